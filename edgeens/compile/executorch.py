"""torch.export -> ExecuTorch program (XNNPACK, or QNN when its SDK is installed), and running one (quantized
programs: edgeens.compile.quantize).

The selective scan is exported in its chunked, functional form (`edgeens/models/scan.py` switches to it under
torch.export), so MambaIR blocks lower to a fixed graph of matmuls and elementwise ops.
"""

from __future__ import annotations

import operator
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from executorch.runtime import Method, Program

from edgeens.compile.artifact import CompileError
from edgeens.files import atomic_path

BACKENDS = ("xnnpack", "qnn")
QNN_HOST_LIBRARY = "lib/x86_64-linux-clang/libQnnHtp.so"


def read_program(path: str | Path) -> bytes:
    """A `.pte` file's bytes, checked before the runtime sees them: ExecuTorch's loader aborts the whole process on
    some damaged files, so a zero-byte, foreign or truncated file is named here with what to do."""
    path = Path(path)
    data = path.read_bytes()
    rebuild = "rebuild it with edgeens compile (or the step that made it)"
    if len(data) < 40 or data[4:6] != b"ET" or data[8:12] != b"eh00":
        what = "is empty" if not data else "is not an ExecuTorch program"
        raise CompileError(f"{path} {what}; {rebuild}")
    program_size = int.from_bytes(data[16:24], "little")
    segment_base = int.from_bytes(data[24:32], "little")
    segment_size = int.from_bytes(data[32:40], "little")
    expected = segment_base + segment_size if segment_base else program_size
    if len(data) < expected:
        raise CompileError(f"{path} is truncated ({len(data):,} of {expected:,} bytes); {rebuild}")
    return data


@dataclass
class LoweredProgram:
    """A serialised `.pte` program and what the lowering did to the graph."""

    buffer: bytes
    delegated_calls: int
    portable_ops: dict[str, int] = field(default_factory=dict)
    export_seconds: float = 0.0

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:  # a .pte is either whole or absent
            tmp.write_bytes(self.buffer)


def qnn_sdk_root() -> Path:
    """The QNN SDK named by QNN_SDK_ROOT, checked before ExecuTorch sees it.

    ExecuTorch downloads an SDK by itself when QNN_SDK_ROOT is unset; edgeens never lets it, so an absent or
    incomplete SDK stops here with what to install."""
    value = os.environ.get("QNN_SDK_ROOT")
    if not value:
        raise CompileError(
            "the QNN backend needs Qualcomm's QNN (QAIRT) SDK, and QNN_SDK_ROOT is not set. Install QAIRT 2.37 "
            "from Qualcomm's software center, then `export QNN_SDK_ROOT=/path/to/qairt/2.37.x` and add "
            "$QNN_SDK_ROOT/lib/x86_64-linux-clang to LD_LIBRARY_PATH. edgeens never downloads the SDK itself. "
            "Without it, use --backend xnnpack or Qualcomm AI Hub (--aihub-device)."
        )
    root = Path(value)
    if not (root / QNN_HOST_LIBRARY).is_file():
        raise CompileError(
            f"QNN_SDK_ROOT={root} does not look like a QNN SDK: {QNN_HOST_LIBRARY} is missing there. "
            "Point QNN_SDK_ROOT at the unpacked qairt/<version> folder."
        )
    return root


def lower_to_executorch(
    model: nn.Module, example_inputs: tuple[Tensor, ...], backend: str = "xnnpack"
) -> LoweredProgram:
    """Export `model` at the static shapes of `example_inputs` and lower it for `backend` (xnnpack or qnn)."""
    from executorch.exir import to_edge_transform_and_lower

    if backend not in BACKENDS:
        raise CompileError(f"unknown ExecuTorch backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    partitioner = _qnn_partitioner() if backend == "qnn" else _xnnpack_partitioner()
    start = time.perf_counter()
    if isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    with torch.no_grad():
        exported = torch.export.export(model, example_inputs)
    with _shallow_provenance():
        edge = to_edge_transform_and_lower(exported, partitioner=[partitioner])
        ops = Counter(
            str(getattr(node.target, "__name__", node.target))
            for node in edge.exported_program().graph.nodes
            if node.op == "call_function"
        )
        delegated = ops.pop("executorch_call_delegate", 0)
        ops.pop("getitem", None)
        buffer = edge.to_executorch().buffer
    return LoweredProgram(buffer, delegated, dict(ops), time.perf_counter() - start)


@contextmanager
def _shallow_provenance() -> Iterator[None]:
    """Keep one level of each node's provenance (`meta["from_node"]`) while lowering.

    torch.fx gives every node a pass rewrites a deep copy of the node's whole provenance chain, and the chain grows
    by a level with every pass: over ExecuTorch's hundred-odd passes, keeping one level lowers scan-heavy stage
    programs in 0.77-0.81x the time (`benchmarks/lowering.py`). Process-wide while active: lower one program at a
    time per process (as `run_in_processes` does). Only debug tooling reads the chain (ETRecord and the Inspector map
    delegate ops back to source lines; edgeens uses neither); the program runs the same."""
    from torch.fx import traceback as fx_traceback

    original = fx_traceback.NodeSource.__init__

    def shallow(self: object, node: torch.fx.Node | None, pass_name: str = "", action: object = None) -> None:
        chain = node.meta.pop("from_node", None) if node is not None else None
        try:
            original(self, node, pass_name, action)
        finally:
            if chain is not None:
                node.meta["from_node"] = chain

    fx_traceback.NodeSource.__init__ = shallow
    try:
        yield
    finally:
        fx_traceback.NodeSource.__init__ = original


def _xnnpack_partitioner():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    class LinearTimeXnnpackPartitioner(XnnpackPartitioner):
        """XNNPACK decides which nodes it supports; `unsupported_depth_partitions` groups them in linear time.
        ExecuTorch's own grouping tries to merge every pair of partitions (and torch.fx's checks every merge for
        cycles): hours on the 15,000-node graph of a paper-size hybrid. Quantised graphs, whose q/dq patterns
        must stay whole, keep ExecuTorch's grouping."""

        def generate_partitions(self, ep):
            groups = self.get_matched_nodes_from_configs(ep)
            if any("quantized_decomposed" in str(n.target) for n in ep.graph_module.graph.nodes):
                # Quantised graphs: q/dq patterns must stay whole, which ExecuTorch's own grouping guarantees.
                return super().generate_partitions(ep)
            matched = {node for group in groups for node in group}
            partitions = unsupported_depth_partitions(ep.graph_module.graph, matched)
            home = {node: p.id for p in partitions for node in p.nodes}
            split = [g for g in groups if len({home.get(n) for n in g if n.op == "call_function"}) > 1]
            if split:
                matched -= {node for group in split for node in group}
                partitions = unsupported_depth_partitions(ep.graph_module.graph, matched)
                home = {node: p.id for p in partitions for node in p.nodes}
            by_id = {p.id: p for p in partitions}
            for group in groups:  # weights travel with their op: XNNPACK serialises them as constants
                owner = next((home[n] for n in group if n in home), None)
                if owner is not None:
                    for node in group:
                        if node.op != "call_function" and node not in home:
                            by_id[owner].add_node(node)
                            home[node] = owner
            return partitions

    return LinearTimeXnnpackPartitioner()


def unsupported_depth_partitions(graph: torch.fx.Graph, supported: set[torch.fx.Node]) -> list:
    """Maximal cycle-free partitions of the `supported` call_function nodes, in time linear in the graph.

    A node's depth is the largest number of unsupported operators on any path into it. Depth never decreases
    along an edge and grows across every unsupported node, so a path that leaves the nodes of one depth through an
    unsupported node can never come back: fusing all supported nodes of one depth cannot create a cycle."""
    from torch.fx.passes.infra.partitioner import Partition

    def is_supported(node: torch.fx.Node) -> bool:
        if node.op != "call_function":
            return False
        if node.target is operator.getitem:  # a tuple element goes with the node that produced the tuple
            return node.args[0] in supported
        return node in supported

    depth: dict[torch.fx.Node, int] = {}
    for node in graph.nodes:  # fx graphs are stored in topological order
        depth[node] = max(
            (depth[p] + (p.op == "call_function" and not is_supported(p)) for p in node.all_input_nodes), default=0
        )
    partitions: dict[int, list[torch.fx.Node]] = {}
    for node in graph.nodes:
        if is_supported(node):
            partitions.setdefault(depth[node], []).append(node)
    return [Partition(id=i, nodes=nodes) for i, nodes in enumerate(partitions.values())]


def _qnn_partitioner():
    qnn_sdk_root()  # refuse before ExecuTorch's own set-up can start a download
    from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
    from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec,
        generate_qnn_executorch_compiler_spec,
    )

    # Snapdragon 8 Elite (SM8750, HTP v79) in fp16: the float path HTP runs natively.
    spec = generate_qnn_executorch_compiler_spec(
        soc_model=QcomChipset.SM8750, backend_options=generate_htp_compiler_spec(use_fp16=True)
    )
    return QnnPartitioner(spec)


def load_forward(program: Program) -> Method:
    """The `forward` method of a loaded ExecuTorch program (which must outlive it), without the runtime's CPU
    probing lines on stderr (edgeens.workers.native_stderr_silenced)."""
    from edgeens.workers import native_stderr_silenced

    with native_stderr_silenced():
        return program.load_method("forward")


def run_program(buffer: bytes, inputs: tuple[Tensor, ...]) -> list[Tensor]:
    """Execute the `forward` method of a serialised program in the ExecuTorch runtime."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(buffer)  # must outlive the method it loads
    return list(load_forward(program).execute(inputs))
