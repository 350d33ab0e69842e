"""Feature-wise distillation (FwKD): one surrogate per (stage, token) of the space's families (MambaIR, lighter
MambaIR, gated convolution), trained to map the teacher stage's input to its output, written as a block pool.

1. `capture_features` runs the teacher once over the training crops and stores every stage's input and output
   (`features/<stage>.safetensors`), so the surrogates never re-run the teacher.
2. `distill_pool` trains each surrogate on those pairs (L1), measures the held-out alignment error (relative L2
   and cosine similarity) before and after, and writes `pool/<stage>-<token>.safetensors` plus
   `pool/manifest.json`, which declares every family's block kind and knobs. Finished surrogates are skipped on a
   re-run (a pool grows when a family is added); the one in progress resumes from `pool/partial/<stage>-<token>.pt`.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from edgeens.data.task import TaskData, TrainingPairs
from edgeens.devices import autocast, on_device
from edgeens.files import atomic_path, folder_lock, write_json
from edgeens.limits import check_memory
from edgeens.models.checkpoint import CheckpointError, weights_hash
from edgeens.models.restormer import Restormer
from edgeens.models.space import (
    PAPER_FAMILIES,
    Family,
    SearchSpace,
    Stage,
    families_to_dict,
    merge_families,
)
from edgeens.models.surrogates import build_surrogate
from edgeens.train.pool import POOL_FORMAT, intact, pool_families, read_manifest, surrogate_name
from edgeens.train.resume import load_training_state, save_training_state
from edgeens.workers import run_in_processes


@dataclass(frozen=True)
class DistillRecipe:
    """Each surrogate's training: Adam with a cosine schedule over `steps`, on the teacher's captured features.
    With `plateau_patience` > 0 it stops early once its held-out alignment error has not improved by
    `plateau_tolerance` (relative) over `plateau_patience` checks, one every `plateau_every` steps: `steps` is then
    a ceiling, and the pool records where each surrogate stopped."""

    steps: int = 500
    lr: float = 5e-4
    batch: int = 4
    checkpoint_every: int = 200
    seed: int = 0
    precision: str = "fp32"  # the surrogates' forward pass: fp32, or bf16 autocast on a GPU
    device: str = "cpu"  # where they train, with their stage's features moved there once
    plateau_patience: int = 0  # 0: every surrogate trains all `steps`
    plateau_every: int = 100
    plateau_tolerance: float = 0.005


def capture_features(
    teacher: Restormer, crops: Tensor, holdout: Tensor, out_dir: str | Path, device: torch.device | None = None
) -> None:
    """Store each stage's (input, output) on `crops` (training) and `holdout` (alignment error) in `out_dir`; the
    teacher runs on `device` (default: the CPU), in fp32 (the surrogates' targets)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = SearchSpace(teacher.config)
    captured: dict[str, dict[str, list[Tensor]]] = {s.name: {"input": [], "output": []} for s in space.stages}

    def hook(name: str):
        def record(_module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
            # A copy on the CPU, where the features are concatenated and written (off a GPU, or of a CPU tensor).
            captured[name]["input"].append(args[0].detach().to("cpu", copy=True))
            captured[name]["output"].append(output.detach().to("cpu", copy=True))

        return record

    handles = [getattr(teacher, s.module).register_forward_hook(hook(s.name)) for s in space.stages]
    teacher.eval()
    device = device or torch.device("cpu")
    try:
        with torch.no_grad(), on_device(teacher, device):
            for split, images in (("train", crops), ("holdout", holdout)):
                for record in captured.values():
                    record["input"].clear()
                    record["output"].clear()
                for start in range(0, len(images), 8):
                    teacher(images[start : start + 8].to(device))
                for name, record in captured.items():
                    tensors = {k: torch.cat(v).contiguous() for k, v in record.items()}
                    with atomic_path(out_dir / f"{name}.{split}.safetensors") as tmp:
                        save_file(tensors, str(tmp))
    finally:
        for handle in handles:
            handle.remove()


def ensure_features(
    teacher: Restormer,
    task: TaskData,
    features_dir: str | Path,
    crops: int,
    holdout: int,
    patch: int,
    device: torch.device | None = None,
) -> None:
    """Capture the teacher's stage features on `crops` training crops of the task (and `holdout` held-out ones)
    once; the settings are recorded beside them (`capture.json`), and a later request with other settings is
    refused rather than answered with the old features (the pool's surrogates were distilled from those)."""
    features_dir = Path(features_dir)
    record_path = features_dir / "capture.json"
    wanted = {
        "teacher_hash": weights_hash(teacher),
        "crops": crops,
        "holdout": holdout,
        "patch": patch,
        **task.identity(),
    }
    complete = (features_dir / "refinement.holdout.safetensors").is_file()
    if complete and record_path.is_file():
        have = json.loads(record_path.read_text())
        differ = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
        if differ:
            what = ", ".join(f"{k} {old} (asked: {new})" for k, (old, new) in differ.items())
            raise CheckpointError(
                f"{features_dir} holds features captured with {what}; its pool was distilled from them. Use a new "
                "--out folder for these settings, or delete its features/ and pool/ to distil again"
            )
        return
    if complete:  # features without capture.json: their settings are unknown, keep them as they are
        return
    # Every stage's input and output per crop pixel: the levels' widths (dim, 2, 4, 8x) at their resolutions sum to
    # 6.6 dim float32 pairs; held twice while each stage's list is concatenated.
    check_memory(
        int(2 * 2 * 4 * 6.625 * teacher.config.dim * (crops + holdout) * patch * patch),
        f"capturing the teacher's stage features on {crops + holdout} crops of {patch}x{patch}",
        "give fewer --crops or a smaller --patch",
    )
    pairs = task.training()  # read once: the held-out crops come from the same training pairs
    capture_features(
        teacher,
        training_crops(pairs, crops, patch, seed=0),
        training_crops(pairs, holdout, patch, seed=1),
        features_dir,
        device,
    )
    write_json(record_path, wanted)


def alignment(surrogate: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Held-out alignment error: relative L2 ||f(x) - y|| / ||y|| and mean per-sample cosine similarity."""
    surrogate.eval()
    with torch.no_grad():
        pred = torch.cat([surrogate(inputs[i : i + 8]) for i in range(0, len(inputs), 8)])
    rel_l2 = ((pred - targets).norm() / targets.norm()).item()
    cosine = F.cosine_similarity(pred.flatten(1), targets.flatten(1), dim=1).mean().item()
    return {"relative_l2": rel_l2, "cosine": cosine}


def distill_pool(
    teacher: Restormer,
    features_dir: str | Path,
    pool_dir: str | Path,
    recipe: DistillRecipe,
    families: tuple[Family, ...] = PAPER_FAMILIES,
    only: list[str] | None = None,
    show_progress: bool = True,
    jobs: int = 1,
) -> dict:
    """Train every surrogate of the teacher's space over `families` (or those named in `only`) and write the
    pool; returns the manifest. An existing pool keeps its surrogates and gains the families it lacks. `jobs`
    surrogates train at once in worker processes (one thread each), handed out as workers free up; each trains on
    `recipe.device` with its stage's features moved there once."""
    features_dir, pool_dir = Path(features_dir), Path(pool_dir)
    (pool_dir / "partial").mkdir(parents=True, exist_ok=True)
    rank, world = _rank_and_world()
    manifest_path = pool_dir / "manifest.json"
    digest = weights_hash(teacher)
    manifest = read_manifest(pool_dir) or {
        "format": POOL_FORMAT,
        "teacher_hash": digest,
        "teacher_config": teacher.config.to_dict(),
        "families": {},
        "recipe": asdict(recipe),
        "surrogates": {},
    }
    if manifest["teacher_hash"] != digest:
        raise CheckpointError(
            f"{manifest_path} was built for another teacher (hash {manifest['teacher_hash'][:12]}..., this teacher "
            f"{digest[:12]}...); use a new pool folder for this teacher"
        )
    known = families_to_dict(pool_families(manifest)) if manifest["surrogates"] else {}
    manifest["families"] = merge_families(known, families, str(manifest_path))
    space = SearchSpace(teacher.config, families)
    todo = [(s, t) for s, t in space.surrogates() if only is None or surrogate_name(s, t) in only]
    mine = todo[rank::world]  # under torchrun each rank distils its own share of the (stage, depth) pairs
    fragment = pool_dir / f"manifest.rank{rank}.json"
    for name, entry in list(manifest["surrogates"].items()):
        if not intact(pool_dir, entry):  # deleted or truncated since: distil it again
            print(f"{pool_dir / entry['file']} is missing or unreadable: distilling {name} again")
            del manifest["surrogates"][name]
    pending = [
        (stage, token, space.family(token[0]), features_dir, recipe, pool_dir)
        for stage, token in mine
        if surrogate_name(stage, token) not in manifest["surrogates"]  # finished in an earlier run
    ]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        disable=not show_progress,
    ) as bar:
        started, finished = time.perf_counter(), 0

        def log_line(name: str, entry: dict) -> None:
            """Into a log file (no bars there) one line per surrogate, so that hours of distillation show progress."""
            if show_progress and not bar.console.is_terminal:
                minutes = (time.perf_counter() - started) / 60
                bar.console.print(
                    f"distilled {name} ({finished}/{len(pending)}, {minutes:.0f} min): {entry['steps_run']} steps, "
                    f"stopped on {entry['stopped']}, relative L2 {entry['alignment_after']['relative_l2']:.3f}",
                    soft_wrap=True,  # a log file's line stays whole (the console wraps at 80 columns off a terminal)
                )

        if jobs > 1 and len(pending) > 1:  # one bar over surrogates: the workers train quietly
            overall = bar.add_task(f"distilling, {jobs} at a time", total=len(pending), status="")
            for (stage, token, *_), entry in run_in_processes(_distill_one, pending, jobs):
                manifest["surrogates"][surrogate_name(stage, token)] = {**entry, "rank": rank}
                write_json(fragment, manifest)  # progress survives a kill
                after = entry["alignment_after"]["relative_l2"]
                bar.update(overall, advance=1, status=f"{surrogate_name(stage, token)}: rel. L2 {after:.3f}")
                finished += 1
                log_line(surrogate_name(stage, token), entry)
        else:
            for arguments in pending:
                name = surrogate_name(*arguments[:2])
                label = f"{name} (rank {rank})" if world > 1 else name
                task = bar.add_task(label, total=recipe.steps, status="")

                def report(step: int, loss: float, task=task) -> None:
                    bar.update(task, completed=step, status=f"L1 {loss:.4f}")

                manifest["surrogates"][name] = {**_distill_one(*arguments, report), "rank": rank}
                write_json(fragment, manifest)  # this rank's progress survives a kill
                finished += 1
                log_line(name, manifest["surrogates"][name])
    if world > 1:
        torch.distributed.barrier()
    if rank == 0:
        manifest = read_manifest(pool_dir)
        write_json(manifest_path, manifest)
        for path in pool_dir.glob("manifest.rank*.json"):
            path.unlink()
    if world > 1:
        torch.distributed.barrier()
    return read_manifest(pool_dir)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _distill_one(
    stage: Stage,
    token: str,
    family: Family,
    features_dir: Path,
    recipe: DistillRecipe,
    pool_dir: Path,
    report: Callable[[int, float], None] | None = None,
) -> dict:
    """Train one surrogate on its stage's captured features (a worker process runs this on its own); `report`
    gets (step, L1) every 10 steps."""
    # safetensors loads straight onto the device: the features move once, not per step
    train = load_file(features_dir / f"{stage.name}.train.safetensors", device=recipe.device)
    held = load_file(features_dir / f"{stage.name}.holdout.safetensors", device=recipe.device)
    return _train_surrogate(stage, token, family, (train, held), recipe, pool_dir, report)


def _train_surrogate(
    stage: Stage,
    token: str,
    family: Family,
    features: tuple[dict[str, Tensor], dict[str, Tensor]],
    recipe: DistillRecipe,
    pool_dir: Path,
    report: Callable[[int, float], None] | None,
) -> dict:
    train, held = features
    device = torch.device(recipe.device)
    name = surrogate_name(stage, token)
    started = time.perf_counter()
    partial = pool_dir / "partial" / f"{name}.pt"
    torch.manual_seed(recipe.seed)
    surrogate = build_surrogate(stage, token, family).to(device)
    before = alignment(surrogate, held["input"], held["output"])
    optimizer = torch.optim.Adam(surrogate.parameters(), lr=recipe.lr, fused=True)  # as the teacher's: faster
    rng = np.random.default_rng(recipe.seed)
    start, plateau = 0, Plateau(recipe)
    if partial.is_file():
        start, extra = load_training_state(partial, surrogate, optimizer, rng)
        before, plateau = extra["before"], Plateau(recipe, **extra.get("plateau", {}))
    # Python floats: a numpy scalar in the optimizer state would make the checkpoint unloadable with weights_only
    scheduler_lr = [recipe.lr * 0.5 * (1 + math.cos(math.pi * s / recipe.steps)) for s in range(recipe.steps + 1)]
    surrogate.train()
    for step in range(start + 1, recipe.steps + 1):
        index = torch.from_numpy(rng.integers(0, len(train["input"]), recipe.batch)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = scheduler_lr[step]
        with autocast(device, recipe.precision):
            predicted = surrogate(train["input"][index])
        loss = F.l1_loss(predicted.float(), train["output"][index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if report is not None and (step % 10 == 0 or step == recipe.steps):
            report(step, loss.item())
        if recipe.plateau_patience and step % recipe.plateau_every == 0:
            plateau.check(step, alignment(surrogate, held["input"], held["output"])["relative_l2"])
            surrogate.train()
            if plateau.stopped_at:
                break
        if step % recipe.checkpoint_every == 0 and step < recipe.steps:
            save_training_state(partial, surrogate, optimizer, step, rng, before=before, plateau=plateau.state())
    after = alignment(surrogate, held["input"], held["output"])
    with atomic_path(pool_dir / f"{name}.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in surrogate.state_dict().items()}, str(tmp))
    partial.unlink(missing_ok=True)
    return {
        "file": f"{name}.safetensors",
        "stage": stage.name,
        "token": token,
        "family": family.letter,
        "depth": int(token[1:]),
        "steps": recipe.steps,
        "steps_run": plateau.stopped_at or recipe.steps,
        "stopped": "plateau" if plateau.stopped_at else "budget",
        "alignment_curve": plateau.curve,  # [step, held-out relative L2] at each plateau check
        "alignment_before": before,
        "alignment_after": after,
        "seconds": round(time.perf_counter() - started, 1),  # this run's share if it resumed
    }


class Plateau:
    """The early stop of one surrogate's distillation: the best held-out error so far, the checks since it, and
    the curve of every check (kept in its checkpoint, so a resumed distillation stops where a straight one would)."""

    def __init__(
        self, recipe: DistillRecipe, best: float = math.inf, since_best: int = 0, curve: list | None = None
    ) -> None:
        self.recipe, self.best, self.since_best, self.curve = recipe, best, since_best, list(curve or [])
        self.stopped_at: int | None = None

    def check(self, step: int, error: float) -> None:
        self.curve.append([step, error])
        if error < self.best * (1 - self.recipe.plateau_tolerance):
            self.best, self.since_best = error, 0
        else:
            self.since_best += 1
        if self.since_best >= self.recipe.plateau_patience:
            self.stopped_at = step

    def state(self) -> dict:
        return {"best": self.best, "since_best": self.since_best, "curve": self.curve}


def training_crops(pairs: TrainingPairs, count: int, patch: int, seed: int) -> Tensor:
    """`count` degraded random crops of the task's training pairs, as the teacher's input batch (N, 3, patch,
    patch). The held-out crops (another seed) come from the same training pairs: never from val or test."""
    degraded, _ = pairs.sample(patch, count, np.random.default_rng(seed))
    return torch.from_numpy(degraded)


@dataclass(frozen=True)
class DistillRequest:
    """One distillation over a run folder (`features/`, `pool/` under `out`): the teacher, the families to distil,
    the task whose training pairs are cropped, and the budget."""

    teacher: Restormer
    out: Path
    families: tuple[Family, ...]
    task: TaskData
    crops: int = 64
    patch: int = 64
    steps: int = DistillRecipe.steps  # one home: the recipe's
    jobs: int = 1
    plateau_patience: int = DistillRecipe.plateau_patience  # > 0: stop each surrogate on its held-out plateau
    device: torch.device = torch.device("cpu")  # where the teacher captures and the surrogates train
    precision: str = "fp32"  # the surrogates' forward pass (edgeens.devices.resolve_precision)


def distill_step(request: DistillRequest, show_progress: bool = True) -> dict:
    """The distill step that `edgeens distill` and `edgeens run` both call: the teacher's stage features on crops
    of the task's training pairs (captured once, by rank 0 under torchrun), then every missing surrogate of
    the families; returns the pool's manifest."""
    rank, _ = _rank_and_world()
    # Rank 0 holds the pool's lock for every rank of its torchrun (a second process on this pool stops at once).
    with folder_lock(request.out / "pool", "edgeens distill") if rank == 0 else contextlib.nullcontext():
        return _distill_step(request, rank, show_progress)


def _distill_step(request: DistillRequest, rank: int, show_progress: bool) -> dict:
    features = request.out / "features"
    if rank == 0:
        holdout = max(4, request.crops // 8)
        ensure_features(request.teacher, request.task, features, request.crops, holdout, request.patch, request.device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank reads the features rank 0 captured
    return distill_pool(
        request.teacher,
        features,
        request.out / "pool",
        DistillRecipe(
            steps=request.steps,
            precision=request.precision,
            device=str(request.device),
            plateau_patience=request.plateau_patience,
        ),
        request.families,
        show_progress=show_progress and rank == 0,
        jobs=request.jobs,
    )
