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


def _provenance_depth(graph: torch.fx.Graph) -> int:
    def depth(sources: list) -> int:
        return max((1 + depth(s.from_node) for s in sources), default=0)

    return max(depth(node.meta.get("from_node", [])) for node in graph.nodes)


def test_lowering_keeps_one_level_of_provenance_and_runs_the_same() -> None:
    from executorch.exir import to_edge_transform_and_lower
    from torch.fx import traceback as fx_traceback

    from edgeens.compile.executorch import _shallow_provenance, _xnnpack_partitioner, run_program

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.exp(-torch.abs(self.conv(x)))
            return torch.sigmoid(y * x) + y

    model, inputs = Block().eval(), (torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)),)
    init = fx_traceback.NodeSource.__init__

    def lower(shallow: bool):
        exported = torch.export.export(model, inputs)
        if not shallow:
            return to_edge_transform_and_lower(exported, partitioner=[_xnnpack_partitioner()])
        with _shallow_provenance():
            return to_edge_transform_and_lower(exported, partitioner=[_xnnpack_partitioner()])

    full, shallow = lower(False), lower(True)
    assert fx_traceback.NodeSource.__init__ is init  # the patch does not outlive the lowering
    # Without the patch every pass adds a level to the chain (the cost the patch removes); with it, one remains.
    assert _provenance_depth(full.exported_program().graph) > 3
    assert _provenance_depth(shallow.exported_program().graph) <= 2
    outputs = [run_program(edge.to_executorch().buffer, inputs)[0] for edge in (full, shallow)]
    assert torch.equal(outputs[0], outputs[1])
