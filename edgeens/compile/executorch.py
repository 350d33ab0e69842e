"""torch.export -> XNNPACK-delegated ExecuTorch program, and running one in the ExecuTorch runtime."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class LoweredProgram:
    """A serialised `.pte` program and what the lowering did to the graph."""

    buffer: bytes
    delegated_calls: int
    portable_ops: dict[str, int] = field(default_factory=dict)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.buffer)


def lower_to_executorch(model: nn.Module, example_inputs: tuple[Tensor, ...]) -> LoweredProgram:
    """Export `model` at the static shapes of `example_inputs` and lower it with the XNNPACK partitioner."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        exported = torch.export.export(model.eval(), example_inputs)
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    ops = Counter(
        str(getattr(node.target, "__name__", node.target))
        for node in edge.exported_program().graph.nodes
        if node.op == "call_function"
    )
    delegated = ops.pop("executorch_call_delegate", 0)
    ops.pop("getitem", None)
    return LoweredProgram(edge.to_executorch().buffer, delegated, dict(ops))


def run_program(buffer: bytes, inputs: tuple[Tensor, ...]) -> list[Tensor]:
    """Execute the `forward` method of a serialised program in the ExecuTorch runtime."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(buffer)
    return list(program.load_method("forward").execute(inputs))
