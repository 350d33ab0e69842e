"""What each precision costs in picture and buys in speed: one model compiled float, w8a8 and w8a16 for every host
runtime that runs each, every program scored on the task's test photos (PSNR / SSIM against the clean images, the
photos restored in blended tiles of the compiled size) and timed in the same shuffled rounds.

The table answers the deployment question the max-abs-error check of `edgeens compile` cannot: how many dB a
quantized program loses on real photos, next to how much faster it runs here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeens.compare import score_restorer
from edgeens.compile.artifact import CompileError, now
from edgeens.compile.pipeline import CompileOptions, compile_model
from edgeens.compile.quantize import PRECISIONS, check_precision_for
from edgeens.data.task import TaskData
from edgeens.files import write_json
from edgeens.profile.host import (
    RUNTIMES,
    TimingPolicy,
    executorch_runner,
    host_description,
    measure_programs,
    onnxruntime_runner,
)
from edgeens.restore import eager_restorer, load_restorer
from edgeens.train.qat import QATRecipe, quantization_aware_finetune
from edgeens.workers import set_threads

TABLE = "precision.json"
_TARGET = {"executorch": "executorch", "onnxruntime": "onnx"}


@dataclass
class PrecisionRequest:
    """One model, the task whose training crops calibrate and whose test photos score it, and where to write."""

    model: nn.Module
    name: str
    task: TaskData
    folder: Path
    size: int = 256
    precisions: tuple[str, ...] = PRECISIONS
    runtimes: tuple[str, ...] = RUNTIMES
    calibration_images: int = 16
    quantize_scope: str = "conv"
    threads: int = 1
    qat: QATRecipe | None = None  # quantization-aware fine-tuning, when post-training w8a8 loses > its threshold
    stages: tuple[str, ...] = ()  # the sensitivity table's stages (edgeens.models.space.STAGE_NAMES; empty: all)
    float_stages: tuple[str, ...] = ()  # mixed precision: a further ExecuTorch w8a8 row with these stages in float
    policy: TimingPolicy = field(default_factory=lambda: TimingPolicy(rounds=3, max_seconds=15.0))

    def programs(self) -> list[tuple[str, str]]:
        """(runtime, precision) pairs that exist: XNNPACK has no w8a16."""
        pairs = []
        for precision in self.precisions:
            for runtime in self.runtimes:
                try:
                    check_precision_for(precision, runtime)
                except CompileError:
                    continue
                pairs.append((runtime, precision))
        return pairs


def compare_precisions(request: PrecisionRequest, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Compile, score and time every (runtime, precision) program of `request.model`; writes precision.json."""
    unknown = [p for p in request.precisions if p not in PRECISIONS]
    if unknown:
        raise CompileError(f"unknown precision {', '.join(unknown)}; choose from: {', '.join(PRECISIONS)}")
    bad = [r for r in request.runtimes if r not in RUNTIMES]
    if bad:
        raise CompileError(f"unknown runtime {', '.join(bad)}; choose from: {', '.join(RUNTIMES)}")
    from edgeens.models.space import STAGE_MODULES

    if unknown := [s for s in request.float_stages if s not in STAGE_MODULES]:
        raise CompileError(f"unknown stage {', '.join(unknown)}; choose from: {', '.join(STAGE_MODULES)}")
    set_threads(request.threads)
    model = request.model.eval()
    size = request.size
    calibration = [torch.from_numpy(c) for c in request.task.calibration_inputs(size, size, request.calibration_images)]
    files = _compile_programs(request, model, request.precisions, calibration, "", say)
    if request.float_stages and ("executorch", "w8a8") in request.programs():
        files |= _compile_programs(request, model, ("w8a8",), calibration, "-mixed", say, request.float_stages)
    say(f"precision: scoring {len(files)} programs and eager PyTorch on {request.task.test_count} test photos")
    scores = {("eager", "fp32"): score_restorer(eager_restorer(model, "eager"), request.task.test_pairs(), size)}
    for key, path in files.items():
        scores[key] = score_restorer(load_restorer(path, request.threads), request.task.test_pairs(), size)
    qat_note = None
    if request.qat is not None:
        worst = max((scores[("eager", "fp32")][0] - v[0] for (r, p), v in scores.items() if p == "w8a8"), default=0)
        if worst <= request.qat.threshold_db:
            qat_note = f"not run: post-training w8a8 loses {worst:.2f} dB, within {request.qat.threshold_db} dB"
        else:
            say(f"precision: w8a8 loses {worst:.2f} dB: quantization-aware fine-tuning ({request.qat.iterations} its)")
            tuned = quantization_aware_finetune(model, request.task, request.qat, say)
            qat_files = _compile_programs(request, tuned, ("w8a8",), calibration, "-qat", say)
            for key, path in qat_files.items():
                scores[key] = score_restorer(load_restorer(path, request.threads), request.task.test_pairs(), size)
            files |= qat_files
            qat_note = f"run: {request.qat}"
    inputs = (torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)),)
    runners = {
        f"{runtime}/{precision}": partial(_runner(runtime), path, inputs, request.threads)
        for (runtime, precision), path in files.items()
    }
    say(
        f"precision: timing {len(runners)} programs ({request.policy.rounds} shuffled rounds, {request.threads} thread)"
    )
    samples = measure_programs(runners, request.policy)
    rows = []
    for (runtime, precision), (mean_psnr, mean_ssim) in scores.items():
        key = f"{runtime}/{precision}"
        row: dict[str, Any] = {"runtime": runtime, "precision": precision, "psnr": mean_psnr, "ssim": mean_ssim}
        if key in samples:
            row |= {"ms": float(np.median(samples[key])), "file": str(files[(runtime, precision)])}
            float_key = f"{runtime}/fp32"  # a QAT row is compared with the float model it started from
            if float_key in samples:
                row["speedup"] = float(np.median(samples[float_key])) / row["ms"]
                row["psnr_vs_float"] = mean_psnr - scores[(runtime, "fp32")][0]
        rows.append(row)
    table = {
        "model": request.name,
        "size": size,
        "data": request.task.describe(),
        "calibration": f"{len(calibration)} degraded {size}x{size} crops of the training split (seed 0)",
        "quantize_scope": request.quantize_scope,
        "threads": request.threads,
        "qat": qat_note,
        "float_stages": list(request.float_stages),  # of the w8a8-mixed row
        "policy": request.policy.to_dict(),
        "host": host_description(),
        "measured": now(),
        "rows": rows,
    }
    write_json(request.folder / TABLE, table)
    return table


SENSITIVITY = "sensitivity.json"


def _compile_programs(
    request: PrecisionRequest,
    model: nn.Module,
    precisions: tuple[str, ...],
    calibration: list[torch.Tensor],
    label: str,
    say: Callable[[str], None],
    float_stages: tuple[str, ...] = (),
) -> dict[tuple[str, str], Path]:
    """Every (runtime, precision) program of `model` the request asks for, compiled into `<folder>/<precision>
    <label>/`; keyed (runtime, precision + label). With `float_stages`: ExecuTorch alone, those stages in float."""
    files: dict[tuple[str, str], Path] = {}
    for precision in precisions:
        runtimes = [r for r, p in request.programs() if p == precision and (r == "executorch" or not float_stages)]
        if not runtimes:
            continue
        folder = request.folder / f"{precision}{label}"
        say(f"precision: compiling {precision}{label} for {', '.join(runtimes)}")
        options = CompileOptions(
            tuple(_TARGET[r] for r in runtimes),
            precision=precision,
            quantize_scope=request.quantize_scope,
            force=True,
            float_stages=float_stages,
        )
        manifest = compile_model(model, request.size, request.size, folder, options, calibration, log=lambda _: None)
        for runtime in runtimes:
            key = _TARGET[runtime] + ("" if precision == "fp32" else f"--{precision}")
            files[(runtime, f"{precision}{label}")] = folder / manifest["targets"][key]["file"]
    return files


def stage_sensitivity(request: PrecisionRequest, say: Callable[[str], None] = print) -> dict[str, Any]:
    """w8a8 one stage at a time (XNNPACK's quantizer inside that stage only, everything else float): the PSNR each
    stage costs on the test photos, against the float model and against every stage quantized. The quantized graph
    is scored as PyTorch runs it (quantize / dequantize ops around int8-rounded values), so no program is lowered;
    `sensitivity.json` in the request's folder."""
    from edgeens.compile.quantize import quantize_for_xnnpack
    from edgeens.models.space import STAGE_MODULES
    from edgeens.restore import Restorer

    set_threads(request.threads)
    model = request.model.eval()
    size = request.size
    calibration = [torch.from_numpy(c) for c in request.task.calibration_inputs(size, size, request.calibration_images)]
    example = (calibration[0],)
    present = {name for name, _ in model.named_children()}
    unknown = [s for s in request.stages if s not in STAGE_MODULES]
    if unknown:
        raise CompileError(f"unknown stage {', '.join(unknown)}; choose from: {', '.join(STAGE_MODULES)}")
    chosen = request.stages or tuple(STAGE_MODULES)
    stages = [(stage, module) for stage, module in STAGE_MODULES.items() if module in present and stage in chosen]
    plans: list[tuple[str, tuple[str, ...]]] = [("none (float)", ()), *((s, (m,)) for s, m in stages)]
    plans.append(("every stage" if not request.stages else "these stages", tuple(m for _, m in stages)))
    rows = []
    for label, modules in plans:
        say(f"sensitivity: w8a8 in {label}")
        if modules:
            graph = quantize_for_xnnpack(model, example, calibration, request.quantize_scope, modules=modules)
            runner = Restorer(label, lambda x, g=graph: g(x), (size, size))
        else:
            runner = Restorer(label, lambda x: model(x), (size, size))
        with torch.no_grad():
            mean_psnr, mean_ssim = score_restorer(runner, request.task.test_pairs(), size)
        rows.append({"quantized": label, "modules": list(modules), "psnr": mean_psnr, "ssim": mean_ssim})
    float_psnr = rows[0]["psnr"]
    for row in rows:
        row["drop"] = float_psnr - row["psnr"]
    table = {
        "model": request.name,
        "size": size,
        "data": request.task.describe(),
        "quantize_scope": request.quantize_scope,
        "calibration": f"{len(calibration)} degraded {size}x{size} crops of the training split (seed 0)",
        "measured": now(),
        "rows": rows,
    }
    write_json(request.folder / SENSITIVITY, table)
    return table


def _runner(runtime: str) -> Callable[..., Callable[[], Any]]:
    if runtime == "executorch":
        return lambda path, inputs, _threads: executorch_runner(path, inputs)
    return onnxruntime_runner


def markdown_table(table: dict[str, Any]) -> str:
    """precision.json as a markdown table, one row per program."""
    lines = [
        f"{table['model']} at {table['size']}x{table['size']}, {table['threads']} thread(s), on {table['data']}; "
        f"calibration: {table['calibration']}.",
        "",
        "| runtime | precision | PSNR dB | vs float dB | SSIM | ms | speed-up vs float |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        gap = f"{row['psnr_vs_float']:+.2f}" if "psnr_vs_float" in row else ""
        ms = f"{row['ms']:.1f}" if "ms" in row else ""
        speed = f"{row['speedup']:.2f}x" if "speedup" in row else ""
        scores = f"{row['psnr']:.2f} | {gap} | {row['ssim']:.4f}"
        lines.append(f"| {row['runtime']} | {row['precision']} | {scores} | {ms} | {speed} |")
    return "\n".join(lines) + "\n"


def sensitivity_markdown(table: dict[str, Any]) -> str:
    """sensitivity.json as a markdown table: PSNR drop per stage quantized alone."""
    lines = [
        f"w8a8 one stage at a time ({table['model']}, {table['size']}x{table['size']} tiles, {table['data']}):",
        "",
        "| quantized | PSNR dB | drop dB | SSIM |",
        "|---|---|---|---|",
    ]
    for row in table["rows"]:
        lines.append(f"| {row['quantized']} | {row['psnr']:.2f} | {row['drop']:.2f} | {row['ssim']:.4f} |")
    return "\n".join(lines) + "\n"
