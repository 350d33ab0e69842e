"""Per-stage programs: every (stage, choice) of a search space as a program of its own, for block-by-block timing.

A stage program is the stack alone (the teacher's Restormer blocks, or a surrogate stack of any family) at the feature
shape that stage sees for a given input size. The fixed part is the whole network with every stage replaced by
the identity: patch embedding, down/upsampling, channel reduction and the output conv, which every architecture
pays for. The predicted latency of an architecture is the fixed part plus its eight stage programs.

Quantized stage programs (`-w8a8.pte`, `-w8a8.onnx`) are calibrated on what each stage sees: the teacher's features
at that stage for the task's calibration crops (a surrogate stands where the teacher's stack stood, so it sees
the same features), and the fixed part on the crops themselves.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from edgeens.compile.artifact import (
    FP32_TOLERANCE,
    CompileError,
    check_tolerance,
    compare_outputs,
    now,
    tool_versions,
    write_json,
)
from edgeens.compile.executorch import lower_to_executorch, run_program
from edgeens.compile.quantize import Quantization, quantize_for_xnnpack, quantize_onnx
from edgeens.files import format_name, upgrade_format
from edgeens.models import EXPORT_FORM_VERSION
from edgeens.models.checkpoint import weights_hash
from edgeens.models.restormer import Restormer
from edgeens.models.space import PAPER_FAMILIES, RESTORMER, SearchSpace, Stage, families_to_dict, merge_families
from edgeens.models.surrogates import build_surrogate
from edgeens.workers import run_in_processes


def _families_named(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 1 to 2: the manifest names the families of its programs; a version-1 folder without them holds
    MambaIR programs at the paper's settings."""
    manifest.setdefault("families", families_to_dict(PAPER_FAMILIES) if manifest.get("programs") else {})
    return manifest


UPGRADES = (_families_named,)
FORMAT = format_name("stages", UPGRADES)
MANIFEST = "stages.json"
FIXED = "fixed"


@dataclass(frozen=True)
class StageProgram:
    """One program to build: a (stage, choice), or the fixed part (stage None)."""

    stage: Stage | None
    choice: str

    @property
    def key(self) -> str:
        return FIXED if self.stage is None else f"{self.stage.name}--{self.choice}"


def stage_input_shape(stage: Stage, height: int, width: int) -> tuple[int, int, int, int]:
    """(1, C, H, W) of the feature map that `stage` takes for a (height x width) input image."""
    scale = 2 ** (stage.level - 1)
    return (1, stage.width, height // scale, width // scale)


def stage_stack(
    teacher: Restormer,
    space: SearchSpace,
    stage: Stage,
    choice: str,
    surrogates: Mapping[tuple[str, str], nn.Module] | None = None,
) -> nn.Module:
    """The module a hybrid runs at `stage` for `choice`: the teacher's stack, a pool surrogate, or (without a pool;
    latency does not depend on the weights) a freshly initialised stack of the choice's family."""
    if choice == RESTORMER:
        return getattr(teacher, stage.module)
    pooled = (surrogates or {}).get((stage.name, choice))
    return pooled or build_surrogate(stage, choice, space.family(choice[0]))


def fixed_part(teacher: Restormer) -> Restormer:
    """The teacher with every stage replaced by the identity (each stage maps its width to itself)."""
    fixed = copy.deepcopy(teacher)
    for stage in SearchSpace(teacher.config).stages:
        setattr(fixed, stage.module, nn.Identity())
    return fixed.eval()


def stage_programs(space: SearchSpace) -> list[StageProgram]:
    """The fixed part, then every (stage, choice) in data-flow order."""
    return [StageProgram(None, FIXED)] + [StageProgram(s, c) for s in space.stages for c in s.choices]


def program_module(
    teacher: Restormer,
    space: SearchSpace,
    program: StageProgram,
    height: int,
    width: int,
    surrogates: Mapping[tuple[str, str], nn.Module] | None = None,
) -> tuple[nn.Module, Tensor]:
    """The module of `program` and a fixed example input of its shape."""
    generator = torch.Generator().manual_seed(0)
    if program.stage is None:
        shape: tuple[int, ...] = (1, teacher.config.inp_channels, height, width)
        return fixed_part(teacher), torch.rand(shape, generator=generator)
    shape = stage_input_shape(program.stage, height, width)
    module = stage_stack(teacher, space, program.stage, program.choice, surrogates).eval()
    return module, torch.randn(shape, generator=generator)


def stage_calibration(
    teacher: Restormer, space: SearchSpace, images: tuple[Tensor, ...]
) -> dict[str, tuple[Tensor, ...]]:
    """Calibration inputs of every program key's module: the teacher's input to each stage for each of `images`
    (one forward each, the inputs caught by pre-hooks), and the images themselves for the fixed part."""
    seen: dict[str, list[Tensor]] = {stage.name: [] for stage in space.stages}
    hooks = [
        getattr(teacher, stage.module).register_forward_pre_hook(
            lambda _, args, name=stage.name: seen[name].append(args[0].detach().clone())
        )
        for stage in space.stages
    ]
    try:
        with torch.no_grad():
            for image in images:
                teacher.eval()(image)
    finally:
        for hook in hooks:
            hook.remove()
    return {FIXED: tuple(images), **{name: tuple(features) for name, features in seen.items()}}


def program_field(target: str, quantization: Quantization) -> str:
    """The manifest field naming a program's file: `file` / `onnx_file`, `file-w8a8` / `onnx_file-w8a16`."""
    return ("file" if target == "executorch" else "onnx_file") + quantization.suffix


@dataclass(frozen=True)
class StageProgramsRequest:
    """The stage programs of one space: the teacher (and the pool's surrogates, when built from a pool), the input
    size, the folder they go to, the targets, how many to build at a time, and their precision."""

    teacher: Restormer
    space: SearchSpace
    size: tuple[int, int]  # (height, width) of the network's input
    folder: Path
    surrogates: Mapping[tuple[str, str], nn.Module] | None = None
    targets: tuple[str, ...] = ("executorch",)
    jobs: int = 1
    quantization: Quantization = Quantization()


def build_stage_programs(
    request: StageProgramsRequest, only: list[str] | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Build, run and check every stage program of `request.space` into `request.folder` as `.pte` (and `.onnx`
    with the onnx target), `request.jobs` at a time, in `request.quantization`'s precision. Resumes: programs
    already recorded in stages.json are kept, so a folder grows when a family or a precision is added. `only`
    restricts to some keys (`encoder1--M2`, `fixed`)."""
    teacher, space, quantization, targets = request.teacher, request.space, request.quantization, request.targets
    height, width = request.size
    out = Path(request.folder)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _open_manifest(out, teacher, space, height, width, request.surrogates is not None)
    programs = [p for p in stage_programs(space) if only is None or p.key in only]
    unknown = set(only or ()) - {p.key for p in stage_programs(space)}
    if unknown:
        raise CompileError(f"no stage program {', '.join(sorted(unknown))}; keys look like 'fixed' or 'latent--M4'")
    for target in targets:
        quantization.check("onnxruntime" if target == "onnx" else target)
    missing = [
        (program, target)
        for program in programs
        for target in ("executorch", "onnx")
        if target in targets
        and not _built(out, manifest["programs"].get(program.key, {}), program_field(target, quantization))
    ]
    features = stage_calibration(teacher, space, quantization.calibration) if missing and quantization.quantized else {}
    tasks = [(request, program, target, _with_features(quantization, features, program)) for program, target in missing]
    with _progress(show_progress) as progress:
        task = progress.add_task(f"stage programs ({request.jobs} at a time)", total=len(tasks))
        for (_, program, *_), built in run_in_processes(_build_one, tasks, request.jobs):
            manifest["programs"][program.key] = {**manifest["programs"].get(program.key, {}), **built}
            write_json(out / MANIFEST, manifest)  # after each program: an interrupted build resumes here
            progress.update(task, advance=1, description=f"stage program {program.key}")
    return manifest


def _built(out: Path, entry: dict[str, Any], field_name: str) -> bool:
    return field_name in entry and (out / entry[field_name]).is_file()


def _with_features(quantization: Quantization, features: dict[str, tuple[Tensor, ...]], program) -> Quantization:
    """`quantization` with the calibration inputs of `program`'s own module."""
    if not quantization.quantized:
        return quantization
    name = FIXED if program.stage is None else program.stage.name
    return Quantization(quantization.precision, quantization.scope, features[name])


def _build_one(
    request: StageProgramsRequest, program: StageProgram, target: str, quantization: Quantization
) -> dict[str, Any]:
    """One program in `quantization`'s precision, run and compared with the float module. A float program is held
    to FP32_TOLERANCE; a quantized one's drift is recorded, not held (what quantization costs is measured on whole
    models and the task's photos, edgeens.precision). Its manifest fields carry the precision (`file-w8a8`)."""
    height, width = request.size
    out = Path(request.folder)
    module, example = program_module(request.teacher, request.space, program, height, width, request.surrogates)
    if quantization.quantized:  # a real feature map: the drift recorded is what quantization does to this stage
        example = quantization.calibration[0]
    with torch.no_grad():
        reference = module(example)
    suffix, tolerance = quantization.suffix, None if quantization.quantized else FP32_TOLERANCE
    common = {
        "stage": None if program.stage is None else program.stage.name,
        "choice": program.choice,
        "input_shape": list(example.shape),
    }
    if target == "onnx":
        from edgeens.compile.onnx import export_onnx, run_onnx

        path = out / f"{program.key}.onnx"
        if not (quantization.quantized and path.is_file()):  # a quantized one starts from the float export
            export_onnx(module, (example,), path)
        if quantization.quantized:
            float_path, path = path, out / f"{program.key}{suffix}.onnx"
            quantize_onnx(float_path, path, quantization.calibration, quantization.precision, quantization.scope)
        comparison = compare_outputs(reference, run_onnx(path, (example,))[0])
        check_tolerance(f"stage program {path.name}", comparison, tolerance)
        return {**common, f"onnx_file{suffix}": path.name, f"onnx_verification{suffix}": comparison}
    lowered_module: nn.Module = module
    if quantization.quantized:
        lowered_module = quantize_for_xnnpack(module, (example,), quantization.calibration, quantization.scope)
    lowered = lower_to_executorch(lowered_module, (example,))
    file = f"{program.key}{suffix}.pte"
    lowered.save(out / file)
    comparison = compare_outputs(reference, run_program(lowered.buffer, (example,))[0])
    check_tolerance(f"stage program {file}", comparison, tolerance)
    return {
        **common,
        f"file{suffix}": file,
        f"bytes{suffix}": len(lowered.buffer),
        f"export_seconds{suffix}": round(lowered.export_seconds, 2),
        f"delegated_calls{suffix}": lowered.delegated_calls,
        f"portable_ops{suffix}": lowered.portable_ops,
        f"verification{suffix}": comparison,
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A stage-programs folder's manifest in the current format (an older version upgraded as it is read), or None
    when the folder has none; an unreadable one is a CompileError."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = upgrade_format(json.loads(path.read_text()), "stages", UPGRADES, path)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        manifest = None
    if manifest is None:
        raise CompileError(f"{path} is unreadable or not a stage-programs manifest; delete it to rebuild them")
    return manifest


def _open_manifest(
    out: Path, teacher: Restormer, space: SearchSpace, height: int, width: int, from_pool: bool
) -> dict[str, Any]:
    identity = {
        "teacher_config": teacher.config.to_dict(),
        "teacher_sha256": weights_hash(teacher),
        "height": height,
        "width": width,
        "surrogates": "pool" if from_pool else "untrained",
        "export_form": EXPORT_FORM_VERSION,
    }
    path = out / MANIFEST
    manifest = read_manifest(out)
    if manifest is not None:
        if {k: manifest.get(k) for k in identity} == identity:
            return _add_families(manifest, space, path)
        raise CompileError(
            f"{out} holds stage programs of another teacher, input size, surrogate set or export form "
            f"({manifest.get('height')}x{manifest.get('width')}, export form {manifest.get('export_form')}, this is "
            f"{EXPORT_FORM_VERSION}); choose another folder, or delete it to rebuild"
        )
    manifest = {
        "format": FORMAT,
        **identity,
        "created": now(),
        "versions": tool_versions(),
        "programs": {},
        "families": {},
    }
    return _add_families(manifest, space, path)


def _add_families(manifest: dict[str, Any], space: SearchSpace, path: Path) -> dict[str, Any]:
    """Record the space's family definitions; a letter already built with other knobs would mix programs."""
    manifest["families"] = merge_families(manifest["families"], space.families, str(path))
    return manifest


def _progress(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, disable=not enabled)
