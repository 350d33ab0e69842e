"""The `edgeens` command. Each subcommand is a thin call into one package."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Distil Restormer into MambaIR hybrids, search them on measured latency, deploy them.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Folder for the clean, noisy and restored PNGs."),
    sigma: float = typer.Option(25.0, help="Gaussian noise level on the 0-255 scale."),
    size: int = typer.Option(250, min=8, max=512, help="Side of the square crop of the sample photo (any size)."),
    threads: int = typer.Option(1, help="torch intra-op threads (recorded with the timings)."),
) -> None:
    """Restore a bundled photo with small RANDOMLY INITIALISED models (plumbing demo until the pipeline lands)."""
    import torch

    from edgeens.demo import run_demo

    torch.set_num_threads(threads)
    console.print(
        "[bold yellow]Note:[/] the models in this demo are randomly initialised, so they do not "
        "denoise; it exercises loading, padding, both architectures and the chunked scan end to end."
    )
    results = run_demo(out, size=size, sigma=sigma)
    table = Table(title=f"sample photo + Gaussian noise sigma={sigma:g}  (torch threads: {threads})")
    for column in ("model", "parameters", "PSNR vs clean (dB)", "seconds"):
        table.add_column(column)
    for row in results:
        table.add_row(
            row["model"],
            f"{row.get('params', 0):,}" if "params" in row else "-",
            f"{row['psnr']:.2f}",
            f"{row['seconds']:.2f}" if row["seconds"] else "-",
        )
    console.print(table)
    console.print(f"images written to {out}/")


@app.command()
def inspect(
    checkpoint: Path = typer.Argument(..., help="A Restormer or MambaIRUNet checkpoint (.pth or .safetensors)."),
) -> None:
    """Load a checkpoint strictly and print the configuration read off its weights."""
    from edgeens.models import CheckpointError, load_model

    try:
        model = load_model(checkpoint)
    except CheckpointError as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from None
    console.print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters")
    for key, value in model.config.to_dict().items():
        console.print(f"  {key} = {value!r}")


@app.command()
def teacher(
    out: Path = typer.Option(Path("runs/default/teacher"), help="Run folder (resumes if it holds a checkpoint)."),
    preset: str = typer.Option("tiny", help="Teacher size: tiny or paper (edgeens.models.space presets)."),
    checkpoint: Path = typer.Option(None, help="Adopt this Restormer checkpoint instead of training."),
    data: Path = typer.Option(None, help="Paired folder (input/, target/); default: bundled photos + degradation."),
    degradation: str = typer.Option("gaussian_noise", help="gaussian_noise, motion_blur or rain_streaks."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    iterations: int = typer.Option(2000, min=1, help="Training iterations (Restormer: 300,000)."),
    max_patch: int = typer.Option(64, min=16, help="Largest progressive patch (Restormer: 384)."),
    checkpoint_every: int = typer.Option(200, min=1, help="Iterations between resumable checkpoints."),
    threads: int = typer.Option(1, min=1, help="torch intra-op threads (recorded in teacher.json)."),
) -> None:
    """Train a Restormer teacher with Restormer's recipe scaled down, or adopt an official checkpoint."""
    import torch

    from edgeens.data.bundled import bundled_split
    from edgeens.data.images import ImageError
    from edgeens.data.paired import DatasetError, PairedImages, find_pairs
    from edgeens.data.transforms import ProgressiveSchedule
    from edgeens.models import CheckpointError, Restormer
    from edgeens.models.space import PRESETS
    from edgeens.train.teacher import (
        SyntheticPairs,
        TeacherRecipe,
        adopt_checkpoint,
        bundled_validation,
        train_teacher,
    )

    torch.set_num_threads(threads)
    try:
        validation = bundled_validation(degradation, sigma)
        if checkpoint is not None:
            summary = adopt_checkpoint(checkpoint, out, validation)
        else:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
            pairs = (
                PairedImages(find_pairs(data))
                if data
                else SyntheticPairs(list(bundled_split("train").values()), degradation, sigma)
            )
            recipe = TeacherRecipe(
                iterations=iterations,
                schedule=ProgressiveSchedule().scaled(max_patch),
                checkpoint_every=checkpoint_every,
            )
            summary = train_teacher(Restormer(**PRESETS[preset].to_dict()), pairs, recipe, out, validation)
    except (CheckpointError, DatasetError, ImageError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from None
    console.print(
        f"teacher written to {out}/teacher.safetensors; validation PSNR {summary['validation_psnr']:.2f} dB "
        f"on the held-out bundled photos ({degradation})"
    )


@app.command()
def distill(
    teacher_path: Path = typer.Option(
        Path("runs/default/teacher/teacher.safetensors"), "--teacher", help="The teacher Restormer checkpoint."
    ),
    out: Path = typer.Option(Path("runs/default"), help="Run folder: features/ and pool/ are written here."),
    degradation: str = typer.Option("gaussian_noise", help="Degradation of the training crops (as the teacher's)."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    crops: int = typer.Option(64, min=4, help="Training crops whose stage features are captured."),
    patch: int = typer.Option(64, min=16, help="Crop size (multiple of 8)."),
    steps: int = typer.Option(500, min=1, help="Optimisation steps per surrogate."),
    threads: int = typer.Option(1, min=1, help="torch intra-op threads."),
) -> None:
    """Feature-wise distillation: capture the teacher's stage features once, train every surrogate, write the pool."""
    import torch

    from edgeens.data.bundled import bundled_split
    from edgeens.models import CheckpointError, Restormer
    from edgeens.train.distill import DistillRecipe, capture_features, distill_pool, training_crops

    torch.set_num_threads(threads)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    try:
        teacher_model = Restormer.from_checkpoint(teacher_path)
        features = out / "features"
        if rank == 0 and not (features / "refinement.holdout.safetensors").is_file():
            clean = list(bundled_split("train").values())
            capture_features(
                teacher_model,
                training_crops(clean, crops, patch, degradation, sigma, seed=0),
                training_crops(clean, max(4, crops // 8), patch, degradation, sigma, seed=1),
                features,
            )
        if distributed:
            torch.distributed.barrier()  # every rank reads the features rank 0 captured
        manifest = distill_pool(
            teacher_model, features, out / "pool", DistillRecipe(steps=steps), show_progress=rank == 0
        )
    except (CheckpointError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from None
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if rank != 0:
        return
    table = Table(title=f"block pool: {out / 'pool'}  (held-out alignment error, relative L2)")
    for column in ("surrogate", "before", "after", "drop"):
        table.add_column(column)
    for name, entry in manifest["surrogates"].items():
        before, after = entry["alignment_before"]["relative_l2"], entry["alignment_after"]["relative_l2"]
        table.add_row(name, f"{before:.4f}", f"{after:.4f}", f"{before / after:.1f}x")
    console.print(table)


if __name__ == "__main__":
    app()
