"""The `edgeens` command. Each subcommand is a thin call into one package."""

from __future__ import annotations

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


if __name__ == "__main__":
    app()
