from __future__ import annotations

import torch


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
