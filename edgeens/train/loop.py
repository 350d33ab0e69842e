"""The training loop every model goes through (the teacher, a hybrid being fine-tuned, a comparison row):
Restormer's recipe, resumable, data-parallel under torchrun.

Recipe (Restormer's ymls): AdamW (lr 3e-4, weight decay 1e-4, betas 0.9/0.999), constant learning rate for the
first 92/300 of training then cosine to 1e-6, L1 loss, gradient-norm clipping at 0.01, progressive patches and
batches. A training folder holds `recipe.json`, `checkpoint.pt` (written atomically every `checkpoint_every`
iterations with the optimizer and both random generators, so a killed run resumes exactly), `log.jsonl` and, at the
end, what the training's `write_result` writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich import get_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgeens.data.task import TrainingPairs
from edgeens.data.transforms import ProgressiveSchedule
from edgeens.devices import autocast, module_device, on_device
from edgeens.errors import EdgeensError
from edgeens.files import folder_lock, write_json
from edgeens.metrics import psnr
from edgeens.models.images import restore_whole
from edgeens.train.resume import load_training_state, save_training_state

Pairs = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TrainingRecipe:
    """Restormer's recipe (its defaults are Restormer's denoising yml), for any model trained here."""

    iterations: int = 300_000
    lr: float = 3e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eta_min: float = 1e-6
    constant_fraction: float = 92 / 300
    # Iterations of a linear rise to `lr` first: a warm start's first Adam steps move every weight by about `lr`
    # whatever its gradient (the moment estimates start empty), which throws a converged model off its optimum.
    warmup: int = 0
    grad_clip: float = 0.01
    schedule: ProgressiveSchedule = field(default_factory=ProgressiveSchedule)
    checkpoint_every: int = 1000
    seed: int = 100
    validate_every: int = 0  # iterations between validations logged as the training curve (0: at the end only)
    init_weights: str = ""  # "path sha256:..." of the weights training started from ("": seeded random weights)
    # Weight of an L1 term pulling the output towards a frozen reference model's output on the same input (the
    # teacher, when fine-tuning its hybrids): a dense target on every crop, not just the clean image.
    distill_weight: float = 0.0
    precision: str = "fp32"  # the forward pass's: fp32, or bf16 autocast on a GPU (edgeens.devices.resolve_precision)


RECIPE_FILE = "recipe.json"
# Fields that change how often things are written, not what is trained: a folder may resume with other values.
_BOOKKEEPING = ("checkpoint_every", "validate_every", "init_weights")


class TrainingDivergedError(EdgeensError):
    """A training whose loss became NaN or infinite: stopped before the step that would spoil the weights."""


class RecipeMismatchError(EdgeensError):
    """A training folder asked to resume (or to be reused) under a recipe other than the one it was trained with."""


def recipe_record(recipe: TrainingRecipe) -> dict[str, Any]:
    """The recipe as JSON stores it (what `recipe.json` and the result's summary hold)."""
    record = {k: v for k, v in asdict(recipe).items() if k != "schedule"} | {"schedule": asdict(recipe.schedule)}
    return json.loads(json.dumps(record))  # tuples as lists, as read back


def check_same_recipe(run_dir: str | Path, recipe: TrainingRecipe) -> None:
    """Refuse a folder trained (or being trained) with another recipe: resuming it would mix two learning-rate
    schedules, and reusing its result would report the old recipe's model under the new one's name."""
    run_dir = Path(run_dir)
    recorded = None
    if (run_dir / RECIPE_FILE).is_file():
        recorded = json.loads((run_dir / RECIPE_FILE).read_text())
    else:  # a finished folder may hold its recipe in its result's summary alone
        for name in ("summary.json", "teacher.json"):
            if (run_dir / name).is_file():
                recorded = json.loads((run_dir / name).read_text()).get("recipe")
                break
    if not recorded:
        return
    current, defaults = recipe_record(recipe), recipe_record(TrainingRecipe())
    differ = [k for k in current if k not in _BOOKKEEPING and recorded.get(k, defaults[k]) != current[k]]
    if differ:
        was = ", ".join(f"{k} {recorded.get(k, defaults[k])} -> {current[k]}" for k in differ if k != "schedule")
        raise RecipeMismatchError(
            f"{run_dir} was trained with another recipe ({was or 'schedule'}); "
            "use a new --out folder, or delete this one to train it again"
        )


def learning_rate(recipe: TrainingRecipe, iteration: int) -> float:
    """A linear rise over `warmup` iterations, constant `lr` up to `constant_fraction` of training, then a cosine down
    to `eta_min` (Restormer's CosineAnnealingRestartCyclicLR with periods [92k, 208k] and eta_mins [3e-4, 1e-6])."""
    if iteration <= recipe.warmup:
        return recipe.lr * iteration / recipe.warmup
    constant = round(recipe.constant_fraction * recipe.iterations)
    if iteration <= constant:
        return recipe.lr
    progress = (iteration - constant) / max(1, recipe.iterations - constant)
    return recipe.eta_min + 0.5 * (recipe.lr - recipe.eta_min) * (1 + math.cos(math.pi * progress))


def validation_psnr(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean PSNR (RGB, [0, 1], BasicSR conventions) of the model's restorations of (degraded, clean) pairs."""
    return float(np.mean(_psnrs(model, pairs)))


def _psnrs(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    return [psnr(restore_whole(model, lq), gt) for lq, gt in pairs]


def _shared_validation(model: torch.nn.Module, pairs: list, rank: int, world: int) -> float:
    """Validation PSNR with the pairs shared out over the ranks (each restores every world-th image)."""
    scores = _psnrs(model, pairs[rank::world])
    if world == 1:
        return float(np.mean(scores))
    # On the model's device: nccl reduces GPU tensors only.
    total = torch.tensor([sum(scores), len(scores)], dtype=torch.float64, device=module_device(model))
    torch.distributed.all_reduce(total)
    return float(total[0] / total[1])


def training_seconds(run_dir: Path) -> float | None:
    """Wall time a folder's training has taken so far, summed over its restarts (every iteration's log line carries
    the running total), or None when its log has no timed iterations (none yet, or written before logs were timed)."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return None
    seconds = None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:  # an iteration's line (validation lines carry no time)
            if "seconds" not in entry:
                return None  # some iterations untimed: a total would undercount
            seconds = entry["seconds"]
    return seconds


def _truncate_log(path: Path, last_iteration: int) -> None:
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if json.loads(line)["iteration"] <= last_iteration]
        path.write_text("".join(line + "\n" for line in lines))


@dataclass
class Training:
    """One model's training: the model (trained in place), its data and recipe, the folder of its checkpoints and
    log, how its result is written when it finishes, and what it is validated on and distilled from."""

    model: torch.nn.Module
    data: TrainingPairs
    recipe: TrainingRecipe
    run_dir: Path
    write_result: Callable[[Path, Any, dict], None]
    validation: Pairs | None = None
    label: str = "train"
    reference: torch.nn.Module | None = None  # frozen; its output is the distillation target (recipe.distill_weight)
    device: torch.device | None = None  # where it trains (default: the CPU)


def train_in_processes(
    trainings: list[Training], jobs: int = 1, say: Callable[[str], None] | None = None, show_progress: bool = True
) -> None:
    """Run several independent trainings `jobs` at a time in worker processes of one thread each (small models keep
    one thread busy, so two processes finish about twice as fast as one with two threads). Each resumes from its own
    checkpoint; with `jobs` 1 they train here, one by one, with progress bars; with more, this process follows them
    in their logs (`watch_trainings`)."""
    from edgeens.workers import run_in_processes

    tasks = [(training, None, None, jobs == 1 and show_progress) for training in trainings]
    watched = [(t.label, Path(t.run_dir), t.recipe.iterations) for t in trainings]
    follow = show_progress and jobs > 1 and len(tasks) > 1
    with watch_trainings(watched, say) if follow else contextlib.nullcontext():
        for done, ((training, *_), _) in enumerate(run_in_processes(train_restoration, tasks, jobs), 1):
            if say:
                say(f"trained {training.label} ({done}/{len(tasks)})")


def logged_iteration(run_dir: Path) -> int:
    """The last iteration in a folder's training log (0 before its first line): how far a training in another
    process has come, as of its last flush (every checkpoint). Reads the file's tail only."""
    try:
        with (run_dir / "log.jsonl").open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            lines = file.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["iteration"])
        except (ValueError, KeyError, TypeError):  # the tail's first line is cut, or a line is being written
            continue
    return 0


def _training_state(label: str, folder: Path, total: int) -> str:
    done = logged_iteration(folder)
    return f"{label} {done}/{total}" if 0 < done < total else f"{label} {'done' if done else 'waiting'}"


@contextlib.contextmanager
def watch_trainings(
    trainings: list[tuple[str, Path, int]], say: Callable[[str], None] | None = None, every: float | None = None
) -> Iterator[None]:
    """While other processes run `trainings` (label, folder, iterations): one progress bar each on a terminal, read
    from their logs every 2 s; elsewhere (a log file) one line through `say` (default: print) every `every`
    seconds (default 10 minutes), so that hours of training are not hours of silence."""
    console = get_console()
    terminal = console.is_terminal
    every = every if every is not None else (2.0 if terminal else 600.0)
    stop = threading.Event()
    if terminal:
        columns = TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        progress = Progress(*columns, console=console)
        bars = [progress.add_task(label, total=total, completed=logged_iteration(f)) for label, f, total in trainings]

        def report() -> None:
            for bar, (_, folder, _) in zip(bars, trainings, strict=True):
                progress.update(bar, completed=logged_iteration(folder))

    else:
        progress = contextlib.nullcontext()
        tell = say or partial(console.print, soft_wrap=True)  # one line in a log file, however many rows

        def report() -> None:
            tell("training: " + ", ".join(_training_state(*training) for training in trainings))

    def follow() -> None:
        while not stop.wait(every):
            report()

    thread = threading.Thread(target=follow, name="watch-trainings", daemon=True)
    with progress:
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def train_restoration(
    training: Training,
    max_steps_this_run: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    show_progress: bool = True,
) -> dict:
    """Restormer's recipe on any restoration model (the teacher, or a hybrid being fine-tuned), resumable, and
    data-parallel when torch.distributed is initialised (torchrun): every rank draws its own crops, DDP averages the
    gradients, rank 0 alone writes the log, the checkpoints and (through `write_result`) the result. With
    `recipe.distill_weight` > 0 the loss adds that weight times the L1 to `reference`'s output (frozen).
    Model, reference and batches live on `device` (default: the CPU) while training, in `recipe.precision`; the
    model is back where it was when the result is written."""
    recipe, reference, label = training.recipe, training.reference, training.label
    if recipe.distill_weight > 0 and reference is None:
        raise ValueError("the recipe distils from a reference model (distill_weight > 0): pass reference=")
    model, device = training.model, training.device or torch.device("cpu")
    run_dir = Path(training.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank = torch.distributed.get_rank() if _distributed() else 0
    # Rank 0 holds the folder for its torchrun: a second process training into it stops at once instead of
    # resuming the same checkpoint and interleaving its log and checkpoints with this one's.
    with folder_lock(run_dir, f"training {label}") if rank == 0 else contextlib.nullcontext():
        check_same_recipe(run_dir, recipe)
        frozen = reference.eval().requires_grad_(False) if reference is not None else None
        with on_device(model, device), on_device(frozen, device) if frozen is not None else contextlib.nullcontext():
            on = dataclasses.replace(training, run_dir=run_dir, reference=frozen, device=device)
            summary = _train_on_device(on, max_steps_this_run, on_step, show_progress)
        if rank == 0 and summary["finished"]:
            training.write_result(run_dir, model, summary)
    return summary


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _train_on_device(
    training: Training,
    max_steps_this_run: int | None,
    on_step: Callable[[int, float], None] | None,
    show_progress: bool,
) -> dict:
    model, data, recipe, run_dir, validation = (
        training.model,
        training.data,
        training.recipe,
        training.run_dir,
        training.validation,
    )
    label, reference, device = training.label, training.reference, training.device
    checkpoint_path = run_dir / "checkpoint.pt"
    distributed = _distributed()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(recipe.seed)
    # After the move: its state lives beside the parameters. Fused: one kernel per step instead of a dozen per
    # tensor, 2.5-3x faster optimizer steps on the CPU (benchmarks/train.py --options fused).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=recipe.betas, fused=True
    )
    start = 0
    if checkpoint_path.is_file():
        start, _ = load_training_state(checkpoint_path, model, optimizer, np.random.default_rng())
        if rank == 0:
            _truncate_log(run_dir / "log.jsonl", start)  # iterations after the checkpoint are redone
    if rank == 0 and not (run_dir / RECIPE_FILE).is_file():
        write_json(run_dir / RECIPE_FILE, recipe_record(recipe))
    if distributed:
        torch.distributed.barrier()  # no rank writes the log before rank 0 has truncated it
    on_gpu = [device.index] if device.type == "cuda" else None
    step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=on_gpu) if distributed else model

    model.train()
    stop = recipe.iterations if max_steps_this_run is None else min(recipe.iterations, start + max_steps_this_run)
    # The log carries the running training time, so that a row's wall time survives restarts (the truncated log
    # ends at the checkpoint the training resumes from, with the time spent up to it).
    earlier = (training_seconds(run_dir) or 0.0) if start > 0 else 0.0
    started, elapsed = time.perf_counter(), earlier
    with (
        (run_dir / "log.jsonl").open("a") if rank == 0 else open(os.devnull, "w") as log,
        Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} L1 {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            disable=not show_progress or rank != 0,
        ) as progress,
    ):
        task = progress.add_task("train", total=recipe.iterations, completed=start, loss=float("nan"))
        for iteration in range(start + 1, stop + 1):
            patch, batch = recipe.schedule.at(iteration, recipe.iterations)
            # A generator per (seed, rank, iteration): crops need no state to resume, and ranks draw different ones.
            rng = np.random.default_rng([recipe.seed, rank, iteration])
            lq, gt = (torch.from_numpy(a).to(device, non_blocking=True) for a in data.sample(patch, batch, rng))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, iteration)
            with autocast(device, recipe.precision):
                restored = step_model(lq)
            loss = F.l1_loss(restored.float(), gt)
            if recipe.distill_weight > 0:
                with torch.no_grad(), autocast(device, recipe.precision):
                    target = reference(lq)
                loss = loss + recipe.distill_weight * F.l1_loss(restored.float(), target.float())
            value = loss.item()  # one device sync per iteration: the log and the bar need the number
            if not math.isfinite(value):  # before the step: the weights and the last checkpoint stay finite
                kept = f"its checkpoint {checkpoint_path} is kept" if checkpoint_path.is_file() else "nothing is kept"
                raise TrainingDivergedError(
                    f"{label}: the loss is {value} at iteration {iteration} in {run_dir}; training stopped and "
                    f"{kept}. Check the data for NaN or infinite values (or an absurd --sigma), or lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            progress.update(task, completed=iteration, loss=value)
            elapsed = earlier + time.perf_counter() - started
            log.write(
                json.dumps(
                    {
                        "iteration": iteration,
                        "loss": value,
                        "lr": optimizer.param_groups[0]["lr"],
                        "patch": patch,
                        "batch": batch,
                        "ranks": world,
                        "seconds": round(elapsed, 3),
                    }
                )
                + "\n"
            )
            if on_step is not None:
                on_step(iteration, value)
            if validation and recipe.validate_every and iteration % recipe.validate_every == 0 and iteration < stop:
                score = _shared_validation(model, validation, rank, world)
                log.write(json.dumps({"iteration": iteration, "validation_psnr": score}) + "\n")
                if rank == 0:
                    progress.console.print(
                        f"{label} iteration {iteration}: validation PSNR {score:.2f} dB", soft_wrap=True
                    )
            if rank == 0 and (iteration % recipe.checkpoint_every == 0 or iteration == stop):
                log.flush()
                save_training_state(checkpoint_path, model, optimizer, iteration, np.random.default_rng())
    if stop < recipe.iterations:
        return {"iteration": stop, "finished": False}
    return {
        "config": model.config.to_dict(),
        "recipe": recipe_record(recipe),
        "iterations": recipe.iterations,
        "ranks": world,
        "seconds_this_run": time.perf_counter() - started,
        "training_seconds": round(elapsed, 3),  # as the log's last line says
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "validation_psnr": _shared_validation(model, validation, rank, world) if validation else None,
        "finished": True,
    }
