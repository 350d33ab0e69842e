"""The `edgeens` application: one error handler for every command, and the options several commands share.
The commands themselves are in the modules beside this one, one per part of the pipeline."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from edgeens.errors import describe_os_error

if TYPE_CHECKING:
    from edgeens.data.task import TaskData

app = typer.Typer(
    help="Distil Restormer into MambaIR hybrids, search them on measured latency, deploy them.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
# Into a log file a line stays one line (rich would wrap it at 80 columns, mid-phrase): grep and tail read it whole.
console.soft_wrap = not console.is_terminal


PIPELINE, USE, MEASURE = "Pipeline steps", "Using a model", "Measurements"  # the panels of `edgeens --help`


def command(panel: str, name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a subcommand under a panel of `--help`. The one place user-facing errors are printed: an
    EdgeensError (or a ValueError from an option's check, or an OSError of a file the user named) is one line and
    exit status 2, never a traceback."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: object, **kwargs: object) -> None:
            try:
                function(*args, **kwargs)
            except OSError as err:
                console.print(f"[bold red]error:[/] {describe_os_error(err)}", soft_wrap=True)
                raise typer.Exit(code=2) from None
            except ValueError as err:  # EdgeensError and the checks of options
                console.print(f"[bold red]error:[/] {err}", soft_wrap=True)  # paths stay whole
                raise typer.Exit(code=2) from None

        return app.command(name, rich_help_panel=panel)(run)

    return register


def _checked(check: Callable[[int], int]) -> Callable[[int | None], int | None]:
    """A typer callback from an edgeens.limits check: the value is refused before the command starts."""

    def callback(value: int | None) -> int | None:
        if value is None:
            return value
        try:
            return check(value)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None

    return callback


def workers_check(what: str) -> Callable[[int | None], int | None]:
    from edgeens.limits import check_workers

    return _checked(lambda value: check_workers(value, what))


def side_check(what: str, allow_zero: bool = False) -> Callable[[int | None], int | None]:
    from edgeens.limits import check_side

    return _checked(lambda value: check_side(value, what, allow_zero))


# Options that several commands share (one declaration, one help text).
Threads = Annotated[int, typer.Option(callback=workers_check("--threads"), help="torch / runtime threads (recorded).")]
Jobs = Annotated[
    int, typer.Option(callback=workers_check("--jobs"), help="Worker processes at once (one thread each).")
]
Degradation = Annotated[
    str | None,
    typer.Option(
        help="The photos' synthetic degradation: gaussian_noise (default), motion_blur or rain_streaks (as the "
        "teacher's); not with --data, whose inputs are already degraded."
    ),
]
Sigma = Annotated[float | None, typer.Option(help="Noise level for gaussian_noise (0-255 scale; default 25).")]
# The model options of the commands that take one model (compile, precision): a checkpoint, or a hybrid composed
# from a teacher, its pool and an architecture string.
ModelCheckpoint = Annotated[Path | None, typer.Argument(help="Restormer / MambaIRUNet checkpoint, or a saved hybrid.")]
HybridTeacher = Annotated[
    Path | None, typer.Option("--teacher", help="Teacher checkpoint, to compose a hybrid (with --pool, --arch).")
]
HybridPool = Annotated[
    Path | None, typer.Option("--pool", help="Block pool folder of `edgeens distill` (with --teacher).")
]
Architecture = Annotated[str | None, typer.Option("--arch", help="Architecture string, e.g. R-M2-M4-R-M6-R-M2-R.")]
# Quantization (compile, precision, profile, run): which operators, and how many training crops calibrate them.
QuantizeScope = Annotated[
    str, typer.Option("--scope", help="With quantization: conv (convolutions and linears) or all operators.")
]
CalibrationImages = Annotated[
    int, typer.Option("--calibration-images", min=1, help="Degraded training crops that calibrate quantization.")
]
FloatStages = Annotated[
    str | None,
    typer.Option(
        "--float-stages",
        help="Mixed precision: stages left in float in the w8a8 ExecuTorch program, e.g. decoder1,refinement "
        "(the ones the sensitivity table finds costly).",
    ),
]
CalibrationFolder = Annotated[
    Path | None,
    typer.Option("--calibration", help="A folder of degraded images to calibrate on instead of the task's crops."),
]
DataFolder = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Your paired dataset (Restormer's input/ + target/, GoPro, HIDE, RealBlur list, Rain100, SIDD, DPDD): "
        "its own train/test split is used, else a seeded 80/10/10 split is made and recorded in the folder.",
    ),
]
ValData = Annotated[Path | None, typer.Option("--val-data", help="Validation pairs of your own (with --data).")]
TestData = Annotated[
    Path | None, typer.Option("--test-data", help="Test pairs of your own (with --data): only ever scored.")
]
SplitSeed = Annotated[int, typer.Option(min=0, help="Seed of the train/val/test split of --data (where it has none).")]
TeacherFile = Annotated[Path, typer.Option("--teacher", help="The teacher Restormer checkpoint.")]
Size = Annotated[str, typer.Option(help="Input size: 256 or HxW, multiples of 8.")]
MaxPatch = Annotated[int, typer.Option(min=16, callback=side_check("--max-patch"), help="Largest progressive patch.")]
MinPatch = Annotated[
    int,
    typer.Option(
        callback=side_check("--min-patch", allow_zero=True),
        help="Smallest progressive patch (0: Restormer's progression scaled to --max-patch).",
    ),
]
BatchPixels = Annotated[
    int,
    typer.Option(min=0, help="Pixels per mini-batch and rank at every patch size (0: Restormer's batch sizes 8..1)."),
]
# `--device` is the phone or target everywhere (profile, run); where the PyTorch work runs is `--torch-device`.
TorchDevice = Annotated[
    str,
    typer.Option(
        "--torch-device", help="Where the PyTorch work runs: auto (a GPU when torch sees one), cpu, cuda or cuda:N."
    ),
]
DeprecatedDevice = Annotated[
    str | None, typer.Option("--device", hidden=True, help="Deprecated spelling of --torch-device.")
]


def chosen_torch_device(torch_device: str, deprecated: str | None) -> str:
    """--torch-device, or the deprecated --device spelling of it (said once; it goes in the next release)."""
    if deprecated is None:
        return torch_device
    console.print("[yellow]--device here means --torch-device: that spelling is deprecated and goes next release[/]")
    return deprecated


Precision = Annotated[
    str, typer.Option(help="Training precision: auto (bf16 autocast on a GPU that has it, else fp32), fp32 or bf16.")
]


def open_task_here(
    folder: Path,
    data: Path | None,
    val_data: Path | None,
    test_data: Path | None,
    degradation: str | None,
    sigma: float | None,
    split_seed: int = 0,
    min_side: int = 16,
    bundled: bool = False,
    dual_pixel: bool = False,
) -> TaskData:
    """The task of a step's folder from its command's data options (edgeens.data.task.open_task)."""
    from edgeens.data.task import DataRequest, open_task

    request = DataRequest(data, val_data, test_data, degradation, sigma, split_seed, bundled, dual_pixel, min_side)
    return open_task(folder, request, say=console.print)
