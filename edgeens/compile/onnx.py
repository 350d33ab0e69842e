"""ONNX export (torch.export-based exporter) and an onnxruntime session to run the result."""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from edgeens.compile.artifact import CompileError

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "restored"
# Each node keeps its module path (pkg.torch.onnx.name_scopes), which attributes per-layer profiles to blocks.
KEPT_METADATA = "pkg.torch.onnx.name_scopes"
SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf's 2 GB cap, with headroom: larger models keep weights in a .data file


@dataclass
class OnnxModel:
    """An exported ONNX file and what is in it."""

    path: Path
    files: list[str]
    nodes: int
    operators: dict[str, int] = field(default_factory=dict)
    export_seconds: float = 0.0


def export_onnx(model: nn.Module, example_inputs: tuple[Tensor, ...], path: str | Path) -> OnnxModel:
    """Export `model` at static shapes with the torch.export-based exporter (the scan exports in chunked form)."""
    import onnx

    path = Path(path)
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = weights_bytes > SINGLE_FILE_LIMIT
    start = time.perf_counter()
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about every op it decomposes
        program = torch.onnx.export(
            model.eval(),
            example_inputs,
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            external_data=external,
            optimize=False,  # onnxscript 0.7.2 folds reshape-matmul-reshape wrongly when sizes coincide
            verbose=False,
        )
        if program is None:
            raise CompileError("torch.onnx.export returned no program")
        for node in program.model.graph.all_nodes():  # stack traces etc. were 70% of a MambaIR file's bytes
            for key in [k for k in node.metadata_props if k != KEPT_METADATA]:
                del node.metadata_props[key]
        program.save(str(tmp), external_data=external)
    os.replace(tmp, path)
    files = [path.name]
    if external:  # the weights file is named after the temporary file; rename it with the model
        data = tmp.with_name(tmp.name + ".data")
        if data.exists():
            os.replace(data, path.with_name(path.name + ".data"))
            files.append(path.name + ".data")
    seconds = time.perf_counter() - start
    graph = onnx.load(str(path), load_external_data=False).graph
    return OnnxModel(path, files, len(graph.node), dict(Counter(n.op_type for n in graph.node)), seconds)


def run_onnx(path: str | Path, inputs: tuple[Tensor, ...], threads: int = 1) -> list[Tensor]:
    """Run an ONNX file in onnxruntime on CPU with `threads` intra-op threads."""

    session = onnx_session(path, threads)
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, {name: t.detach().cpu().numpy() for name, t in zip(names, inputs, strict=True)})
    return [torch.from_numpy(o) for o in outputs]


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with deliberate thread counts (oversubscription is 10x slower on 2 cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    path = Path(path)
    fix = "export it again: edgeens compile MODEL --target onnx"
    if not path.is_file():
        raise CompileError(f"{path} does not exist; {fix}")
    if path.stat().st_size == 0:
        raise CompileError(f"{path} is empty (0 bytes); {fix}")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable or invalid models
        detail = str(err).split(":")[-1].strip() or type(err).__name__
        raise CompileError(
            f"{path} is not a readable ONNX model ({detail}: truncated or another kind of file); {fix}"
        ) from None
