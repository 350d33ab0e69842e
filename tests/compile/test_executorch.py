from __future__ import annotations

import pytest
import torch

from edgeens.compile.executorch import lower_to_executorch, run_program
from edgeens.models import Restormer


@pytest.mark.slow
def test_restormer_lowers_to_xnnpack_and_matches_eager(tmp_path) -> None:
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()
    x = torch.rand(1, 3, 16, 16)
    program = lower_to_executorch(model, (x,))
    assert program.delegated_calls >= 1
    out = run_program(program.buffer, (x,))[0]
    with torch.no_grad():
        assert (out - model(x)).abs().max().item() <= 1e-4
    program.save(str(tmp_path / "restormer.pte"))
    assert (tmp_path / "restormer.pte").stat().st_size == len(program.buffer)


def test_partitions_by_unsupported_depth_are_maximal_and_acyclic() -> None:
    from torch.fx.passes.utils.fuser_utils import validate_partition

    from edgeens.compile.executorch import unsupported_depth_partitions

    def f(x):
        a = x + 1
        c = a * 2
        u = torch.flip(a, [0])  # "unsupported"
        b = u - 1
        d = b + c
        e = torch.flip(d, [0])  # "unsupported"
        return e * 3, c

    gm = torch.fx.symbolic_trace(f)
    nodes = {n.name: n for n in gm.graph.nodes}
    supported = {n for n in gm.graph.nodes if n.op == "call_function" and "flip" not in n.name}
    partitions = unsupported_depth_partitions(gm.graph, supported)
    groups = sorted(sorted(n.name for n in p.nodes) for p in partitions)
    assert groups == [["add", "mul"], ["add_1", "sub"], ["mul_1"]]
    assert all(validate_partition(list(p.nodes)) for p in partitions)
    assert "flip" in nodes  # the unsupported nodes stay outside every partition
