"""Train a Restormer teacher with Restormer's recipe (edgeens.train.loop), scaled down by flags, or adopt an
official checkpoint. The run directory holds the training loop's files and, at the end, `teacher.safetensors` plus
`teacher.json` (configuration, recipe, validation PSNR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from edgeens.data.task import TaskData, TrainingPairs
from edgeens.files import atomic_path, writable_folder, write_json
from edgeens.models.restormer import Restormer
from edgeens.train.loop import Pairs, Training, TrainingRecipe, train_restoration, validation_psnr


def _write_teacher(run_dir: Path, model: Restormer, summary: dict) -> None:
    """`teacher.safetensors` (atomically) and `teacher.json`: the run's result."""
    with atomic_path(run_dir / "teacher.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(run_dir / "teacher.json", summary, indent=1)


def train_teacher(
    model: Restormer,
    data: TrainingPairs,
    recipe: TrainingRecipe,
    run_dir: str | Path,
    validation: Pairs | None = None,
    max_steps_this_run: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    show_progress: bool = True,
) -> dict:
    """Train `model` in place on the CPU, resuming from `run_dir/checkpoint.pt` if it exists. Returns the summary
    that is also written to `teacher.json` (or, if stopped early by `max_steps_this_run`, the progress)."""
    training = Training(model, data, recipe, Path(run_dir), _write_teacher, validation, "teacher")
    return train_restoration(training, max_steps_this_run, on_step, show_progress)


def adopt_checkpoint(path: str | Path, run_dir: str | Path, validation: Pairs) -> dict:
    """Use an official (or any Restormer) checkpoint as the teacher: load it strictly, store it as the run's
    `teacher.safetensors`, and record its configuration and validation PSNR."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = Restormer.from_checkpoint(path)
    summary = {
        "config": model.config.to_dict(),
        "source": str(path),
        "iterations": 0,
        "validation_psnr": validation_psnr(model, validation),
        "finished": True,
    }
    _write_teacher(run_dir, model, summary)
    return summary


@dataclass(frozen=True)
class TeacherRequest:
    """One teacher: adopt a checkpoint, or train the recipe on the task's training pairs (validated on its val
    pairs). `edgeens teacher` and `edgeens run` both make their teacher through `teacher_step`."""

    out: Path
    task: TaskData
    adopt: Path | None = None  # a Restormer checkpoint used as it is (no training)
    preset: str = "tiny"
    init: Path | None = None  # weights to warm-start from (their architecture, not the preset's)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    device: torch.device = torch.device("cpu")  # where training runs (edgeens.devices.resolve_device)


def teacher_step(request: TeacherRequest, show_progress: bool = True) -> dict:
    """Make the teacher in `request.out` (`teacher.safetensors`, `teacher.json`; training resumes from its
    checkpoint) and return its summary, validation PSNR included."""
    import dataclasses

    from edgeens.models.checkpoint import weights_hash
    from edgeens.models.space import PRESETS

    writable_folder(request.out)  # before the validation images are read
    validation = request.task.teacher_validation()
    if request.adopt is not None:
        return adopt_checkpoint(request.adopt, request.out, validation)
    if request.preset not in PRESETS:
        raise ValueError(f"unknown preset {request.preset!r}; choose one of: {', '.join(PRESETS)}")
    config = PRESETS[request.preset]
    if request.task.dual_pixel:
        config = dataclasses.replace(config, inp_channels=6, dual_pixel_task=True)
    recipe = request.recipe
    torch.manual_seed(recipe.seed)  # the initial weights too: the same command trains the same teacher
    if request.init is not None:
        model = Restormer.from_checkpoint(request.init).train()
        recipe = dataclasses.replace(recipe, init_weights=f"{request.init} (weights sha256 {weights_hash(model)})")
    else:
        model = Restormer(**config.to_dict())
    training = Training(
        model, request.task.training(), recipe, request.out, _write_teacher, validation, "teacher", None, request.device
    )
    return train_restoration(training, show_progress=show_progress)
