"""`edgeens compile`: one model, one input size, each target lowered, run and checked against eager PyTorch.

Like ai-hub-models' export scripts, the steps (ExecuTorch, ONNX, AI Hub) are independent and each can be left
out; every local artifact is executed on a fixed input and compared with eager PyTorch before it is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeens.compile.artifact import (
    FP32_TOLERANCE,
    CompileError,
    ModelCard,
    check_tolerance,
    compare_outputs,
    fixed_input,
    now,
    open_output,
    peak_rss_gib,
    record,
    tool_versions,
)
from edgeens.compile.executorch import lower_to_executorch, run_program
from edgeens.compile.quantize import (
    QUANTIZE_SCOPES,
    check_precision_for,
    parse_precision,
    quantize_for_xnnpack,
    quantize_onnx,
)
from edgeens.files import writable_folder
from edgeens.models import EXPORT_FORM_VERSION

TARGETS = ("executorch", "onnx", "aihub", "android-assets")


@dataclass
class CompileOptions:
    """What to build. `aihub_device` is needed only for the aihub target. `precision`: fp32, w8a8 or w8a16
    (edgeens.compile.quantize); a quantized build also keeps its float ONNX export (the quantizer's source)."""

    targets: tuple[str, ...] = ("executorch", "onnx")
    backend: str = "xnnpack"
    precision: str = "fp32"
    quantize_scope: str = "conv"  # which operators are quantized (edgeens.compile.quantize.QUANTIZE_SCOPES)
    float_stages: tuple[str, ...] = ()  # stages left in float in a quantized ExecuTorch program (mixed precision)
    aihub_device: str | None = None
    aihub_runtime: str = "tflite"
    aihub_source: str = "export"  # upload the torch.export program ("export") or the ONNX file ("onnx")
    aihub_compute_unit: str = "cpu"  # AI Hub's --compute_unit: cpu, gpu or npu
    aihub_timeout_s: float = 3600.0
    aihub_poll_s: float = 10.0
    force: bool = False
    android_app: Path = Path("android_app")  # where android-assets puts the program

    def check(self) -> None:
        self.precision = parse_precision(self.precision)  # "none" and the aliases first: every check below reads it
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise CompileError(f"unknown target {', '.join(unknown) or '(none)'}; choose from: {', '.join(TARGETS)}")
        if "android-assets" in self.targets:
            from edgeens.compile.android import check_app

            check_app(self.android_app)  # before any lowering: a wrong path should not cost an export
            if self.precision != "fp32":
                raise CompileError("the demo app runs the float ONNX export: android-assets takes no --quantize")
        if self.float_stages:
            from edgeens.models.space import STAGE_MODULES

            unknown = [s for s in self.float_stages if s not in STAGE_MODULES]
            if unknown:
                raise CompileError(f"unknown stage {', '.join(unknown)}; choose from: {', '.join(STAGE_MODULES)}")
            if self.precision == "fp32" or set(self.targets) != {"executorch"}:
                raise CompileError(
                    "--float-stages leaves stages of a quantized ExecuTorch program in float: give --quantize w8a8 "
                    "--target executorch"
                )
        if self.quantize_scope not in QUANTIZE_SCOPES:
            known = ", ".join(QUANTIZE_SCOPES)
            raise CompileError(f"unknown quantization scope {self.quantize_scope!r}; choose one of: {known}")
        if "executorch" in self.targets and self.precision != "fp32":
            check_precision_for(self.precision, "executorch")
            if self.backend != "xnnpack":
                raise CompileError("--quantize uses XNNPACK's quantizer for ExecuTorch; it needs --backend xnnpack")
        if "aihub" in self.targets and not self.aihub_device:
            raise CompileError("the aihub target needs a device: --aihub-device 'Snapdragon 8 Elite QRD'")
        if "aihub" in self.targets:
            from edgeens.compile.aihub import check_compute_unit

            check_compute_unit(self.aihub_compute_unit)
        if self.aihub_source not in ("export", "onnx"):
            raise CompileError(f"--aihub-source must be export or onnx, not {self.aihub_source!r}")


def compile_model(
    model: nn.Module,
    height: int,
    width: int,
    out_dir: str | Path,
    options: CompileOptions = CompileOptions(),
    calibration: Iterable[Tensor] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build every requested target of `model` at (height x width) into `out_dir`; returns compile.json's content."""
    options.check()
    model = model.eval()
    out = writable_folder(out_dir)  # before anything is lowered
    card = ModelCard.of(model, height, width)
    manifest = open_output(out, card, options.force)
    manifest.update(
        updated=now(), versions=tool_versions(), export_form=EXPORT_FORM_VERSION, threads=torch.get_num_threads()
    )
    example = fixed_input(card.in_channels, height, width)
    with torch.no_grad():
        reference = model(example)
    calibration = list(calibration)
    if options.precision != "fp32" and not calibration:
        raise CompileError("quantization needs at least one calibration image (the task's training crops)")
    quantized = "" if options.precision == "fp32" else f"--{options.precision}"
    if "executorch" in options.targets:
        entry = _executorch(model, example, reference, out, options, calibration)
        record(out, manifest, f"executorch{quantized}", entry)
        log(_summary(f"executorch{quantized}", entry))
    hub_quantizes = "aihub" in options.targets and bool(quantized)  # Hub quantizes the float ONNX export
    if "onnx" in options.targets or "android-assets" in options.targets or hub_quantizes:
        entry = _onnx(model, example, reference, out)
        record(out, manifest, "onnx", entry)
        log(_summary("onnx", entry))
        if quantized and "onnx" in options.targets:
            entry = _onnx_quantized(out / entry["file"], example, reference, out, options, calibration)
            record(out, manifest, f"onnx{quantized}", entry)
            log(_summary(f"onnx{quantized}", entry))
    if "android-assets" in options.targets:
        from edgeens.compile.android import bundle_for_android

        bundled = bundle_for_android(out / manifest["targets"]["onnx"]["file"], card, options.android_app)
        record(out, manifest, "android-assets", {"bundle": str(bundled)})  # not "file": outside the folder
        log(f"android-assets: {bundled} and its model, for the demo app")
    if "aihub" in options.targets:
        entry = _aihub(model, example, out, options, manifest, calibration)
        key = f"aihub--{options.aihub_runtime}--{options.aihub_compute_unit}{quantized}"
        record(out, manifest, key, entry)
        log(f"aihub: {entry['device']} / {entry['runtime']}: job {entry['job_id']} -> {entry['file']}")
    return manifest


def _executorch(model, example, reference, out: Path, options: CompileOptions, calibration) -> dict[str, Any]:
    lowered_model: nn.Module = model
    precision = options.precision
    if precision != "fp32":
        from edgeens.models.space import STAGE_MODULES

        keep = [STAGE_MODULES[stage] for stage in options.float_stages]
        lowered_model = quantize_for_xnnpack(model, (example,), calibration, options.quantize_scope, keep_float=keep)
    program = lower_to_executorch(lowered_model, (example,), options.backend)
    file = (
        "model.pte"
        if options.backend == "xnnpack" and precision == "fp32"
        else f"model-{options.backend}-{precision}.pte"
    )
    program.save(out / file)
    entry: dict[str, Any] = {
        "file": file,
        "backend": options.backend,
        "precision": precision,
        "bytes": len(program.buffer),
        "export_seconds": round(program.export_seconds, 2),
        "delegated_calls": program.delegated_calls,
        "portable_ops": program.portable_ops,
    }
    if precision != "fp32":
        entry["scope"] = options.quantize_scope
        entry["float_stages"] = list(options.float_stages)
    if options.backend == "qnn":  # the host runtime has no HTP: QNN programs are checked on the phone
        entry["verification"] = None
    else:
        comparison = compare_outputs(reference, run_program(program.buffer, (example,))[0])
        entry["verification"] = {**comparison, "tolerance": FP32_TOLERANCE if precision == "fp32" else None}
        with _removed_if_refused(out, [file]):
            check_tolerance(f"ExecuTorch {file}", comparison, FP32_TOLERANCE if precision == "fp32" else None)
    entry["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return entry


@contextlib.contextmanager
def _removed_if_refused(out: Path, files: list[str]) -> Iterator[None]:
    """A refused artifact (NaN output, drift beyond the tolerance) is removed: nothing refused stays beside the
    manifest for a later step (or a user) to pick up."""
    try:
        yield
    except CompileError:
        for name in files:
            (out / name).unlink(missing_ok=True)
        raise


def _onnx(model, example, reference, out: Path) -> dict[str, Any]:
    from edgeens.compile.onnx import export_onnx, run_onnx

    exported = export_onnx(model, (example,), out / "model.onnx")
    with _removed_if_refused(out, exported.files):
        comparison = compare_outputs(reference, run_onnx(exported.path, (example,))[0])
        check_tolerance("ONNX model.onnx", comparison, FP32_TOLERANCE)
    return {
        "file": exported.path.name,
        "files": exported.files,
        "bytes": sum((out / f).stat().st_size for f in exported.files),
        "export_seconds": round(exported.export_seconds, 2),
        "nodes": exported.nodes,
        "operators": exported.operators,
        "verification": {**comparison, "tolerance": FP32_TOLERANCE},
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def _onnx_quantized(
    float_path: Path, example: Tensor, reference: Tensor, out: Path, options: CompileOptions, calibration: list[Tensor]
) -> dict[str, Any]:
    """The float export quantized statically by ONNX Runtime, run and compared with eager (reported, not held to
    the float tolerance: what quantization costs is measured on the task's photos, edgeens.precision)."""
    import time

    from edgeens.compile.onnx import run_onnx

    precision = options.precision
    path = out / f"model-{precision}.onnx"
    start = time.perf_counter()
    quantize_onnx(float_path, path, calibration, precision, options.quantize_scope)
    seconds = time.perf_counter() - start
    with _removed_if_refused(out, [path.name]):
        comparison = compare_outputs(reference, run_onnx(path, (example,))[0])
        check_tolerance(f"ONNX {path.name}", comparison, None)
    return {
        "file": path.name,
        "precision": precision,
        "bytes": path.stat().st_size,
        "export_seconds": round(seconds, 2),
        "source": float_path.name,
        "scope": options.quantize_scope,
        "verification": {**comparison, "tolerance": None},
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def _aihub(
    model: nn.Module, example: Tensor, out: Path, options: CompileOptions, manifest: dict[str, Any], calibration
) -> dict[str, Any]:
    from edgeens.compile.aihub import HubTarget, compile_on_hub, quantize_on_hub

    quantize: dict[str, Any] = {}
    if options.precision != "fp32":  # Hub quantizes the float ONNX export, then compiles its quantized model
        if "onnx" not in manifest["targets"]:
            raise CompileError("AI Hub quantizes the float ONNX export: add the onnx target (--target onnx)")
        float_onnx = out / manifest["targets"]["onnx"]["file"]
        inputs = [c.numpy() for c in calibration]
        source, quantize = quantize_on_hub(
            float_onnx, inputs, options.precision, out, options.aihub_timeout_s, options.aihub_poll_s
        )
    elif options.aihub_source == "onnx":
        if "onnx" not in manifest["targets"]:
            raise CompileError("--aihub-source onnx uploads model.onnx: add the onnx target (--target onnx)")
        source = out / manifest["targets"]["onnx"]["file"]
    else:
        with torch.no_grad():
            source = torch.export.export(model, (example,))
    target = HubTarget(
        options.aihub_device or "",
        options.aihub_runtime,
        options.aihub_compute_unit,
        options.precision,
        options.aihub_timeout_s,
        options.aihub_poll_s,
    )
    entry = compile_on_hub(source, tuple(example.shape), out, target)
    return entry | quantize


def _summary(target: str, entry: dict[str, Any]) -> str:
    check = entry.get("verification")
    numerics = (
        "not run on this host"
        if check is None
        else f"max abs error {check['max_abs_error']:.2e}, PSNR vs eager "
        + ("inf" if check["psnr_db"] is None else f"{check['psnr_db']:.1f} dB")
    )
    return (
        f"{target}: {entry['file']} ({entry['bytes'] / 2**20:.1f} MiB) in {entry['export_seconds']:.1f} s; "
        f"{numerics}; peak memory {entry['peak_rss_gib']:.2f} GiB"
    )
