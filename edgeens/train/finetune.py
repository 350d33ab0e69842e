"""Fine-tune the search's candidates end to end and keep the best (spec/paper.md step 4).

Each candidate is composed from the teacher and the pool, trained with the teacher's recipe (scaled by flags) in
its own resumable folder `<out>/<architecture>/`, and scored on the validation pairs before and after. The best
validation PSNR is saved as a self-describing hybrid (`best.safetensors`) with `finetune.json` beside it. Under
torchrun every candidate trains data-parallel (DDP) across the ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeens.data.task import TaskData, TrainingPairs
from edgeens.data.transforms import ProgressiveSchedule
from edgeens.errors import EdgeensError
from edgeens.files import folder_lock, now, write_json
from edgeens.models.hybrid import HybridUNet
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace
from edgeens.train.loop import (
    Pairs,
    Training,
    TrainingRecipe,
    check_same_recipe,
    train_in_processes,
    train_restoration,
    validation_psnr,
)
from edgeens.train.pool import BlockPool, check_pool

RESULT = "hybrid.safetensors"


class FinetuneError(EdgeensError):
    """Fine-tuning that cannot start: no candidates, or inputs that do not fit together."""


def write_hybrid(run_dir: Path, model: Any, summary: dict) -> None:
    model.save(run_dir / RESULT)
    write_json(run_dir / "summary.json", summary)


@dataclass(frozen=True)
class CandidateTraining:
    """What every candidate of one fine-tuning trains with: the training pairs, the recipe, the validation crops it
    is selected on, and the device it trains on (default: the CPU)."""

    data: TrainingPairs
    recipe: TrainingRecipe
    validation: Pairs
    device: torch.device | None = None


def finetune_candidates(
    teacher: Restormer,
    pool: Mapping[tuple[str, str], nn.Module],
    candidates: list[str],
    training: CandidateTraining,
    out_dir: str | Path,
    show_progress: bool = True,
    jobs: int = 1,
) -> dict[str, Any]:
    """Fine-tune every candidate (finished ones are kept, an interrupted one resumes), `jobs` at a time in worker
    processes (not under torchrun, where the ranks share each candidate), and pick the best."""
    if not candidates:
        raise FinetuneError("no candidates to fine-tune: run edgeens search first, or name them with --arch")
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    # Rank 0 holds the folder's lock for every rank of its torchrun (a second process on it stops at once).
    with folder_lock(out_dir, "edgeens finetune") if rank == 0 else contextlib.nullcontext():
        return _finetune(teacher, pool, candidates, training, Path(out_dir), show_progress, jobs)


def _finetune(
    teacher: Restormer,
    pool: Mapping[tuple[str, str], nn.Module],
    candidates: list[str],
    training: CandidateTraining,
    out: Path,
    show_progress: bool,
    jobs: int,
) -> dict[str, Any]:
    data, recipe, validation, device = training.data, training.recipe, training.validation, training.device
    check_pool(getattr(pool, "space", None) or SearchSpace(teacher.config), pool)
    out.mkdir(parents=True, exist_ok=True)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    rows = []
    models = {architecture: HybridUNet.from_teacher(teacher, architecture, pool) for architecture in candidates}
    for model in models.values():  # finished folders too: their result must be this recipe's
        check_same_recipe(out / model.architecture_string, recipe)
    composed = {architecture: validation_psnr(model, validation) for architecture, model in models.items()}
    if not distributed and jobs > 1:
        folders = {a: out / m.architecture_string for a, m in models.items()}
        pending = [(m, folders[a], a) for a, m in models.items() if not (folders[a] / RESULT).is_file()]
        trainings = [Training(m, data, recipe, f, write_hybrid, validation, a, device=device) for m, f, a in pending]
        train_in_processes(trainings, jobs, show_progress=show_progress)
    for architecture, model in models.items():
        folder = out / model.architecture_string
        before = composed[architecture]
        if not (folder / RESULT).is_file():
            training = Training(model, data, recipe, folder, write_hybrid, validation, architecture, device=device)
            train_restoration(training, show_progress=show_progress)
        if distributed:
            torch.distributed.barrier()  # rank 0 has written the result every rank reads next
        tuned = HybridUNet.load(folder / RESULT)
        rows.append(
            {
                "architecture": tuned.architecture_string,
                "psnr_composed": before,
                "psnr_finetuned": validation_psnr(tuned, validation),
                "folder": folder.name,
            }
        )
    best = max(rows, key=lambda r: r["psnr_finetuned"])
    summary = {
        "teacher_psnr": validation_psnr(teacher, validation),
        "candidates": rows,
        "best": best["architecture"],
        "iterations": recipe.iterations,
        "ranks": torch.distributed.get_world_size() if distributed else 1,
        "created": now(),
    }
    if rank == 0:
        HybridUNet.load(out / best["folder"] / RESULT).save(out / "best.safetensors")
        write_json(out / "finetune.json", summary)
    return summary


@dataclass(frozen=True)
class FinetunePatches:
    """The fine-tuning's progressive patches: Restormer's progression scaled so the largest is `max_patch`
    (mapped onto [`min_patch`, `max_patch`] when given), each stage's batch balanced to about `batch_pixels`
    pixels (0: Restormer's batches 8..1). Global-pooling surrogates (G) fine-tuned on small patches lose
    more on whole photos than on crops: larger patches carry them to the deployed tile size."""

    max_patch: int = 64
    min_patch: int = 0
    batch_pixels: int = 0

    def __post_init__(self) -> None:
        if self.max_patch < 16 or self.max_patch % 8:
            raise ValueError(
                f"the largest fine-tuning patch must be a multiple of 8, at least 16, got {self.max_patch}"
            )
        if self.batch_pixels < 0:
            raise ValueError(
                f"pixels per fine-tuning mini-batch must be 0 (Restormer's batches) or more, got {self.batch_pixels}"
            )
        try:  # a smallest patch outside 8..max_patch is refused here, before any training
            self.schedule()
        except ValueError as err:
            raise ValueError(f"fine-tuning patches: {err}") from None

    def schedule(self) -> ProgressiveSchedule:
        schedule = ProgressiveSchedule().scaled(self.max_patch, self.min_patch)
        return schedule.balanced(self.batch_pixels) if self.batch_pixels else schedule


def finetune_recipe(
    iterations: int,
    patches: FinetunePatches = FinetunePatches(),
    checkpoint_every: int = 100,
    lr: float = 3e-4,
    distill_weight: float = 0.0,
    precision: str = "fp32",
) -> TrainingRecipe:
    """The teacher's recipe scaled to a fine-tuning budget: what every fine-tuned model of a run (candidates and
    the comparison's rows alike) trains with. `lr` and `distill_weight` (L1 to the teacher's output) are for warm
    starts: every model fine-tuned here starts from trained weights."""
    return TrainingRecipe(
        iterations=iterations,
        lr=lr,
        # A warm start's first Adam steps move every weight by about lr: fine-tuned 100 iterations, the teacher
        # lost 0.25 dB on the val photos without a warm-up, 0.18 dB with one (benchmarks/finetune_teacher.py).
        warmup=iterations // 10,
        distill_weight=distill_weight,
        schedule=patches.schedule(),
        checkpoint_every=checkpoint_every,
        precision=precision,
    )


@dataclass(frozen=True)
class FinetuneRequest:
    """Fine-tune `candidates` (architecture strings) composed from the teacher and its pool, on the task's
    training pairs, selected on its validation crops."""

    teacher: Restormer
    pool: BlockPool
    candidates: tuple[str, ...]
    out: Path
    task: TaskData
    iterations: int = 300
    patches: FinetunePatches = FinetunePatches()
    checkpoint_every: int = 100
    jobs: int = 1
    device: torch.device = torch.device("cpu")  # where the candidates train
    precision: str = "fp32"  # their forward pass (edgeens.devices.resolve_precision)


def finetune_step(request: FinetuneRequest, show_progress: bool = True) -> dict[str, Any]:
    """Fine-tune every candidate into `request.out` (resumable) and keep the best; returns finetune.json."""
    recipe = finetune_recipe(request.iterations, request.patches, request.checkpoint_every, precision=request.precision)
    training = CandidateTraining(request.task.training(), recipe, request.task.validation_crops(), request.device)
    return finetune_candidates(
        request.teacher, request.pool, list(request.candidates), training, request.out, show_progress, request.jobs
    )
