"""`edgeens teacher`, `distill` and `finetune`: the training steps (edgeens.train)."""

from __future__ import annotations

from pathlib import Path

import typer

import edgeens.cli.views as views
from edgeens.cli.options import (
    PIPELINE,
    BatchPixels,
    DataFolder,
    Degradation,
    DeprecatedDevice,
    Jobs,
    MaxPatch,
    MinPatch,
    Precision,
    Sigma,
    SplitSeed,
    TeacherFile,
    TestData,
    Threads,
    TorchDevice,
    ValData,
    chosen_torch_device,
    command,
    console,
    open_task_here,
    side_check,
)
from edgeens.workers import distributed_group, process_prologue


@command(PIPELINE)
def teacher(
    out: Path = typer.Option(Path("runs/default/teacher"), help="Run folder (resumes if it holds a checkpoint)."),
    preset: str = typer.Option("tiny", help="Teacher size: tiny or paper (edgeens.models.space presets)."),
    checkpoint: Path = typer.Option(None, help="Adopt this Restormer checkpoint instead of training."),
    data: DataFolder = None,
    val_data: ValData = None,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    photos: bool = typer.Option(
        True,
        "--photos/--bundled",
        help="Without --data: train on the photo catalogue's train split and validate on its whole val photos "
        "(make photos installs it), or on scikit-image's bundled photos alone.",
    ),
    degradation: Degradation = None,
    sigma: Sigma = None,
    dual_pixel: bool = typer.Option(False, help="DPDD's left + right views in (6 channels), with --data."),
    iterations: int = typer.Option(2000, min=1, help="Training iterations (Restormer: 300,000)."),
    max_patch: MaxPatch = 64,
    min_patch: MinPatch = 0,
    init: Path = typer.Option(
        None,
        help="Start from these Restormer weights instead of seeded random ones (a warm start: e.g. a longer, "
        "lower-rate schedule on a trained teacher); the architecture is the weights', --preset is not used.",
    ),
    lr: float = typer.Option(3e-4, min=1e-8, max=1.0, help="Peak learning rate (Restormer: 3e-4)."),
    constant_fraction: float = typer.Option(
        92 / 300, min=0.0, max=1.0, help="Share of training at the peak rate before the cosine (Restormer: 92/300)."
    ),
    seed: int = typer.Option(100, min=0, help="Seed of the initial weights and of every crop drawn."),
    batch_pixels: BatchPixels = 0,
    validate_every: int = typer.Option(0, min=0, help="Iterations between logged validations (0: at the end)."),
    checkpoint_every: int = typer.Option(200, min=1, help="Iterations between resumable checkpoints."),
    threads: Threads = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
    precision: Precision = "auto",
) -> None:
    """Train a Restormer teacher with Restormer's recipe scaled down (DDP under torchrun), or adopt a checkpoint."""

    from edgeens.data.transforms import ProgressiveSchedule
    from edgeens.devices import resolve_device, resolve_precision
    from edgeens.train.loop import TrainingRecipe
    from edgeens.train.teacher import TeacherRequest, teacher_step

    process_prologue(threads)
    place = resolve_device(chosen_torch_device(device, old_device))
    schedule = ProgressiveSchedule().scaled(max_patch, min_patch)
    recipe = TrainingRecipe(
        iterations=iterations,
        lr=lr,
        constant_fraction=constant_fraction,
        schedule=schedule.balanced(batch_pixels) if batch_pixels else schedule,
        checkpoint_every=checkpoint_every,
        validate_every=validate_every,
        seed=seed,
        precision=resolve_precision(precision, place),
    )
    with distributed_group(place) as rank:
        task = open_task_here(
            out, data, val_data, test_data, degradation, sigma, split_seed, max_patch, not photos, dual_pixel
        )
        request = TeacherRequest(out, task, checkpoint, preset, init, recipe, place)
        summary = teacher_step(request, show_progress=rank == 0)
    if rank == 0:
        console.print(
            f"teacher written to {out}/teacher.safetensors; validation PSNR {summary['validation_psnr']:.2f} dB "
            f"on the validation pairs of {task.describe()}"
        )


@command(PIPELINE)
def distill(
    teacher_path: TeacherFile = Path("runs/default/teacher/teacher.safetensors"),
    out: Path = typer.Option(Path("runs/default"), help="Run folder: features/ and pool/ are written here."),
    data: DataFolder = None,
    val_data: ValData = None,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    degradation: Degradation = None,
    sigma: Sigma = None,
    crops: int = typer.Option(64, min=4, help="Training crops whose stage features are captured."),
    patch: int = typer.Option(64, min=16, callback=side_check("--patch"), help="Crop size (multiple of 8)."),
    steps: int = typer.Option(500, min=1, help="Steps per surrogate (the ceiling with --plateau-patience)."),
    plateau_patience: int = typer.Option(
        0,
        min=0,
        help="Stop a surrogate once its held-out alignment error has not improved by 0.5% over this many checks "
        "(one every 100 steps); 0: train every surrogate all --steps.",
    ),
    families: str = typer.Option(
        None,
        help="Surrogate families (default M,S,G): M (paper MambaIR), L, S (lighter), G (gated conv), X=kind:knobs.",
    ),
    threads: Threads = 1,
    jobs: Jobs = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
    precision: Precision = "auto",
) -> None:
    """Feature-wise distillation: capture the teacher's stage features once, train every surrogate, write the pool
    (an existing pool keeps its surrogates and gains the families it lacks)."""

    from edgeens.devices import resolve_device, resolve_precision
    from edgeens.models import Restormer
    from edgeens.models.space import DEFAULT_FAMILIES, parse_families
    from edgeens.train.distill import DistillRequest, distill_step

    process_prologue(threads)
    place = resolve_device(chosen_torch_device(device, old_device))
    mixed = resolve_precision(precision, place)
    with distributed_group(place) as rank:
        chosen = parse_families(families or DEFAULT_FAMILIES)
        teacher_model = Restormer.from_checkpoint(teacher_path)
        task = open_task_here(out, data, val_data, test_data, degradation, sigma, split_seed, patch)
        request = DistillRequest(
            teacher_model,
            out,
            chosen,
            task,
            crops,
            patch,
            steps,
            jobs,
            plateau_patience=plateau_patience,
            device=place,
            precision=mixed,
        )
        manifest = distill_step(request)
    if rank == 0:
        console.print(views.pool_view(manifest, out / "pool"))


@command(PIPELINE)
def finetune(
    teacher_path: TeacherFile = Path("runs/default/teacher/teacher.safetensors"),
    pool: Path = typer.Option(Path("runs/default/pool"), help="Block pool the hybrids are composed from."),
    search_dir: Path = typer.Option(
        Path("runs/default/search"), "--search", help="Search folder whose front.json names the candidates."
    ),
    arch: list[str] = typer.Option(None, help="Fine-tune these architectures instead (repeat the option)."),
    out: Path = typer.Option(Path("runs/default/finetune"), help="Folder: one resumable run per candidate."),
    data: DataFolder = None,
    val_data: ValData = None,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    degradation: Degradation = None,
    sigma: Sigma = None,
    iterations: int = typer.Option(300, min=1, help="Iterations per candidate (the teacher's recipe, scaled)."),
    max_patch: MaxPatch = 64,
    min_patch: MinPatch = 0,
    batch_pixels: BatchPixels = 0,
    checkpoint_every: int = typer.Option(100, min=1, help="Iterations between resumable checkpoints."),
    threads: Threads = 1,
    jobs: Jobs = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
    precision: Precision = "auto",
) -> None:
    """Fine-tune the search's candidates end to end (DDP under torchrun) and keep the best validation PSNR."""

    from edgeens.devices import resolve_device, resolve_precision
    from edgeens.models import Restormer
    from edgeens.search.step import front_candidates
    from edgeens.train.finetune import FinetunePatches, FinetuneRequest, finetune_step
    from edgeens.train.pool import load_pool

    process_prologue(threads)
    place = resolve_device(chosen_torch_device(device, old_device))
    mixed = resolve_precision(precision, place)
    with distributed_group(place) as rank:
        candidates = tuple(arch or front_candidates(search_dir))
        teacher_model = Restormer.from_checkpoint(teacher_path)
        surrogates = load_pool(pool, teacher_model)
        task = open_task_here(out, data, val_data, test_data, degradation, sigma, split_seed, max_patch)
        request = FinetuneRequest(
            teacher_model,
            surrogates,
            candidates,
            out,
            task,
            iterations,
            FinetunePatches(max_patch, min_patch, batch_pixels),
            checkpoint_every,
            jobs,
            place,
            mixed,
        )
        summary = finetune_step(request, show_progress=rank == 0)
    if rank == 0:
        console.print(views.finetune_view(summary))
        console.print(
            f"teacher {summary['teacher_psnr']:.2f} dB; best {summary['best']} -> {out}/best.safetensors "
            f"(edgeens compile {out}/best.safetensors)"
        )
