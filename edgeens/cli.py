"""The `edgeens` command. Each subcommand is a thin call into one package."""

from __future__ import annotations

import errno
import functools
import os
import shlex
from collections.abc import Callable
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
STEP_NAMES = ("teacher", "distill", "profile", "search", "finetune", "compile", "compare", "report")  # edgeens.run


def _command(name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a subcommand. The one place user-facing errors are printed: an EdgeensError (or a ValueError from
    an option's check, or an OSError of a file the user named) is one line and exit status 2, never a traceback."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: object, **kwargs: object) -> None:
            try:
                function(*args, **kwargs)
            except OSError as err:
                console.print(f"[bold red]error:[/] {_describe_os_error(err)}")
                raise typer.Exit(code=2) from None
            except ValueError as err:  # EdgeensError and the checks of options
                console.print(f"[bold red]error:[/] {err}")
                raise typer.Exit(code=2) from None

        return app.command(name)(run)

    return register


def _describe_os_error(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    hint = {
        errno.ENOSPC: "the disk is full; free space and run the command again (it resumes)",
        errno.EROFS: "the file system is read-only; choose a writable --out",
        errno.EACCES: "permission denied; choose a folder you can write (--out)",
        errno.ENOTDIR: "a path that should be a folder is a file; choose another --out",
        errno.EEXIST: "a file is in the way of a folder; choose another --out",
        errno.ENOENT: "no such file or folder; check the path",
    }.get(err.errno, "check the path and try again")
    return f"{where}{err.strerror or err}; {hint}"


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


def _workers(what: str) -> Callable[[int | None], int | None]:
    from edgeens.limits import check_workers

    return _checked(lambda value: check_workers(value, what))


def _side(what: str, allow_zero: bool = False) -> Callable[[int | None], int | None]:
    from edgeens.limits import check_side

    return _checked(lambda value: check_side(value, what, allow_zero))


def _start_distributed() -> tuple[bool, int]:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU): (distributed, rank)."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False, 0
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True, torch.distributed.get_rank()


def _quiet_toolchain() -> None:
    from edgeens.workers import quiet_toolchain

    quiet_toolchain()


@_command()
def inspect(
    checkpoint: Path = typer.Argument(..., help="A Restormer or MambaIRUNet checkpoint (.pth or .safetensors)."),
) -> None:
    """Load a checkpoint strictly and print the configuration read off its weights."""
    from edgeens.models import load_model

    model = load_model(checkpoint)
    console.print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters")
    for key, value in model.config.to_dict().items():
        console.print(f"  {key} = {value!r}")


@_command()
def teacher(
    out: Path = typer.Option(Path("runs/default/teacher"), help="Run folder (resumes if it holds a checkpoint)."),
    preset: str = typer.Option("tiny", help="Teacher size: tiny or paper (edgeens.models.space presets)."),
    checkpoint: Path = typer.Option(None, help="Adopt this Restormer checkpoint instead of training."),
    data: Path = typer.Option(None, help="Paired folder (input/, target/); default: photos + degradation."),
    photos: bool = typer.Option(
        True,
        "--photos/--bundled",
        help="Without --data: train on the photo catalogue's train split and validate on its whole val photos "
        "(make photos installs it), or on scikit-image's bundled photos alone.",
    ),
    degradation: str = typer.Option("gaussian_noise", help="gaussian_noise, motion_blur or rain_streaks."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    dual_pixel: bool = typer.Option(False, help="DPDD's left + right views in (6 channels), with --data."),
    iterations: int = typer.Option(2000, min=1, help="Training iterations (Restormer: 300,000)."),
    max_patch: int = typer.Option(
        64, min=16, callback=_side("--max-patch"), help="Largest progressive patch (Restormer: 384)."
    ),
    min_patch: int = typer.Option(
        0,
        callback=_side("--min-patch", allow_zero=True),
        help="Smallest progressive patch (0: Restormer's progression scaled to --max-patch).",
    ),
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
    batch_pixels: int = typer.Option(
        0, min=0, help="Pixels per mini-batch and rank at every patch size (0: Restormer's batch sizes 8..1)."
    ),
    validate_every: int = typer.Option(0, min=0, help="Iterations between logged validations (0: at the end)."),
    checkpoint_every: int = typer.Option(200, min=1, help="Iterations between resumable checkpoints."),
    threads: int = typer.Option(
        1, callback=_workers("--threads"), help="torch intra-op threads per process (recorded in teacher.json)."
    ),
) -> None:
    """Train a Restormer teacher with Restormer's recipe scaled down (DDP under torchrun), or adopt a checkpoint."""
    import dataclasses

    import torch

    from edgeens.data.bundled import bundled_split
    from edgeens.data.paired import PairedImages, find_pairs
    from edgeens.data.photos import degraded_pairs, photo_split
    from edgeens.data.transforms import ProgressiveSchedule
    from edgeens.models import Restormer
    from edgeens.models.checkpoint import weights_hash
    from edgeens.models.space import PRESETS
    from edgeens.train.teacher import (
        SyntheticPairs,
        TeacherRecipe,
        adopt_checkpoint,
        bundled_validation,
        train_teacher,
    )

    torch.set_num_threads(threads)
    distributed, rank = _start_distributed()
    try:
        use_photos = photos and data is None
        validation = (
            list(degraded_pairs("val", degradation, sigma).values())
            if use_photos
            else bundled_validation(degradation, sigma)
        )
        if checkpoint is not None:
            summary = adopt_checkpoint(checkpoint, out, validation)
        else:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
            config = PRESETS[preset]
            if dual_pixel:
                if data is None:
                    raise ValueError("--dual-pixel trains on DPDD's views: give the dataset folder with --data")
                config = dataclasses.replace(config, inp_channels=6, dual_pixel_task=True)
            if data:
                pairs = PairedImages(find_pairs(data, dual_pixel=dual_pixel))
            else:
                clean = photo_split("train") if use_photos else bundled_split("train")
                pairs = SyntheticPairs(list(clean.values()), degradation, sigma)
            if dual_pixel:  # the bundled photos have no dual-pixel views: validate on centre crops of the data
                validation = pairs.validation_crops(2, 128)
            schedule = ProgressiveSchedule().scaled(max_patch, min_patch)
            torch.manual_seed(seed)  # the initial weights too: the same command trains the same teacher
            model = Restormer.from_checkpoint(init).train() if init is not None else Restormer(**config.to_dict())
            recipe = TeacherRecipe(
                iterations=iterations,
                lr=lr,
                constant_fraction=constant_fraction,
                schedule=schedule.balanced(batch_pixels) if batch_pixels else schedule,
                checkpoint_every=checkpoint_every,
                validate_every=validate_every,
                seed=seed,
                init_weights=f"{init} (weights sha256 {weights_hash(model)})" if init is not None else "",
            )
            summary = train_teacher(model, pairs, recipe, out, validation, show_progress=rank == 0)
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if rank == 0:
        where = "whole validation photos of the catalogue" if use_photos else "held-out bundled photos"
        console.print(
            f"teacher written to {out}/teacher.safetensors; validation PSNR {summary['validation_psnr']:.2f} dB "
            f"on the {where} ({degradation})"
        )


@_command()
def distill(
    teacher_path: Path = typer.Option(
        Path("runs/default/teacher/teacher.safetensors"), "--teacher", help="The teacher Restormer checkpoint."
    ),
    out: Path = typer.Option(Path("runs/default"), help="Run folder: features/ and pool/ are written here."),
    degradation: str = typer.Option("gaussian_noise", help="Degradation of the training crops (as the teacher's)."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    crops: int = typer.Option(64, min=4, help="Training crops whose stage features are captured."),
    patch: int = typer.Option(64, min=16, callback=_side("--patch"), help="Crop size (multiple of 8)."),
    steps: int = typer.Option(500, min=1, help="Optimisation steps per surrogate."),
    families: str = typer.Option(
        None,
        help="Surrogate families (default M,S,G): M (paper MambaIR), L, S (lighter), G (gated conv), X=kind:knobs.",
    ),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="torch intra-op threads."),
    jobs: int = typer.Option(
        1, callback=_workers("--jobs"), help="Surrogates trained at once, each in its own process (1 thread each)."
    ),
) -> None:
    """Feature-wise distillation: capture the teacher's stage features once, train every surrogate, write the pool
    (an existing pool keeps its surrogates and gains the families it lacks)."""
    import torch

    from edgeens.models import Restormer
    from edgeens.models.space import DEFAULT_FAMILIES, parse_families
    from edgeens.train.distill import DistillRequest, distill_step

    torch.set_num_threads(threads)
    distributed, rank = _start_distributed()
    try:
        chosen = parse_families(families or DEFAULT_FAMILIES)
        request = DistillRequest(
            Restormer.from_checkpoint(teacher_path), out, chosen, degradation, sigma, crops, patch, steps, jobs
        )
        manifest = distill_step(request)
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


def _pool_families(space, letters: str) -> tuple:
    """The pool's families named in `letters` (`M,G`), refusing one the pool does not hold."""
    from edgeens.models.space import ArchitectureError

    chosen = [letter.strip().upper() for letter in letters.split(",") if letter.strip()]
    held = [f.letter for f in space.families]
    unknown = [letter for letter in chosen if letter not in held]
    if unknown or not chosen:
        raise ArchitectureError(
            f"the pool holds families {', '.join(held)}, not {', '.join(unknown) or 'none'}; distil them first "
            f"(edgeens distill --families ...) or search only families the pool holds (e.g. --families {held[0]})"
        )
    return tuple(space.family(letter) for letter in chosen)


def _model_to_compile(
    checkpoint: Path | None,
    teacher_path: Path | None,
    pool: Path | None,
    arch: str | None,
    untrained: str | None,
    kind: str,
):
    """The model named on the command line: a checkpoint, a teacher + pool + architecture, or an untrained preset."""
    from edgeens.models import Restormer, load_model, untrained_model
    from edgeens.models.hybrid import HybridUNet

    given = [
        name
        for name, value in (("CHECKPOINT", checkpoint), ("--teacher", teacher_path), ("--untrained", untrained))
        if value
    ]
    if len(given) != 1:
        raise ValueError(
            "name exactly one model: a CHECKPOINT (Restormer, MambaIRUNet or saved hybrid), --teacher with --pool "
            f"and --arch (a hybrid), or --untrained tiny|paper with --kind; got {', '.join(given) or 'none'}"
        )
    if checkpoint:
        return load_model(checkpoint)
    if untrained:
        return untrained_model(kind, untrained, arch)
    if not arch:
        raise ValueError("--teacher composes a hybrid: add --arch (e.g. R-M2-M4-R-M6-R-M2-R) and --pool")
    teacher_model = Restormer.from_checkpoint(teacher_path)
    if pool is None:
        raise ValueError("--teacher --arch needs the block pool the surrogates come from: --pool runs/<name>/pool")
    from edgeens.train.pool import load_pool

    return HybridUNet.from_teacher(teacher_model, arch, load_pool(pool, teacher_model)).eval()


@_command("compile")
def compile_command(
    checkpoint: Path = typer.Argument(None, help="Restormer / MambaIRUNet checkpoint, or a saved hybrid."),
    teacher_path: Path = typer.Option(
        None, "--teacher", help="Teacher checkpoint, to compose a hybrid (with --pool, --arch)."
    ),
    pool: Path = typer.Option(None, help="Block pool folder of `edgeens distill` (with --teacher)."),
    arch: str = typer.Option(None, help="Architecture string, e.g. R-M2-M4-R-M6-R-M2-R."),
    untrained: str = typer.Option(None, help="Random weights at a preset size (tiny, paper): export checks only."),
    kind: str = typer.Option("restormer", help="With --untrained: restormer, mambairunet or hybrid (needs --arch)."),
    size: str = typer.Option("256", help="Input size: 256 or HxW, multiples of 8."),
    out: Path = typer.Option(None, help="Output folder (default: exports/<model>-<HxW>)."),
    target: list[str] = typer.Option(
        ["executorch", "onnx"], help="executorch, onnx, aihub, android-assets (repeatable)."
    ),
    android_app: Path = typer.Option(Path("android_app"), help="The demo app that android-assets bundles into."),
    backend: str = typer.Option("xnnpack", help="ExecuTorch backend: xnnpack, or qnn (needs QNN_SDK_ROOT)."),
    int8: bool = typer.Option(False, help="Post-training int8 (PT2E, XNNPACK quantizer) for the ExecuTorch target."),
    calibration: Path = typer.Option(None, help="Folder of images for int8 calibration (default: bundled photos)."),
    aihub_device: str = typer.Option(None, help="Qualcomm AI Hub device or chipset, e.g. 'Snapdragon 8 Elite QRD'."),
    aihub_runtime: str = typer.Option("tflite", help="AI Hub target runtime: tflite, qnn_context_binary, onnx."),
    aihub_source: str = typer.Option("export", help="Upload the torch.export program (export) or model.onnx (onnx)."),
    stages: bool = typer.Option(False, "--stages", help="Per-stage programs of the teacher's space instead."),
    families: str = typer.Option(
        None, help="With --stages and no pool: surrogate families of the space (default M,S,G, as profile)."
    ),
    force: bool = typer.Option(False, help="Replace another model's artifacts in the output folder."),
    threads: int = typer.Option(
        1, callback=_workers("--threads"), help="torch intra-op threads (recorded in compile.json)."
    ),
) -> None:
    """Lower a model to ExecuTorch (.pte), ONNX and/or Qualcomm AI Hub, run each artifact and check it against
    eager PyTorch; numbers go to compile.json beside the artifacts."""
    _quiet_toolchain()
    import torch

    from edgeens.compile.artifact import parse_size
    from edgeens.compile.pipeline import CompileOptions, compile_model
    from edgeens.compile.stages import build_stage_programs

    torch.set_num_threads(threads)
    height, width = parse_size(size)
    if stages:
        from edgeens.models.space import DEFAULT_FAMILIES, SearchSpace, parse_families
        from edgeens.rundir import stage_programs_folder

        teacher_model, space_name = _stage_teacher(checkpoint, teacher_path, untrained)
        surrogates = None
        if pool:
            from edgeens.train.pool import load_pool

            surrogates = load_pool(pool, teacher_model)
            if families is not None:
                raise ValueError("--families comes from the pool's manifest when --pool is given; drop one of them")
        space = (
            surrogates.space
            if surrogates
            else SearchSpace(teacher_model.config, parse_families(families or DEFAULT_FAMILIES))
        )
        # The folder `edgeens profile` reads for this teacher and size: what is built here is not lowered again.
        folder = out or stage_programs_folder("exports", space_name, height, width)
        manifest = build_stage_programs(teacher_model, height, width, folder, surrogates, space=space)
        table = Table(title=f"stage programs in {folder} ({height}x{width}, {threads} thread(s))")
        for column in ("program", "input", "MiB", "export s", "delegates", "max abs err"):
            table.add_column(column)
        for key, entry in manifest["programs"].items():
            table.add_row(
                key,
                "x".join(map(str, entry["input_shape"])),
                f"{entry['bytes'] / 2**20:.2f}",
                f"{entry['export_seconds']:.1f}",
                str(entry["delegated_calls"]),
                f"{entry['verification']['max_abs_error']:.1e}",
            )
        console.print(table)
        return
    model = _model_to_compile(checkpoint, teacher_path, pool, arch, untrained, kind)
    name = getattr(model, "architecture_string", None) or type(model).__name__.lower()
    folder = out or Path("exports") / f"{name}-{height}x{width}"
    options = CompileOptions(
        tuple(target),
        backend,
        int8,
        aihub_device,
        aihub_runtime,
        aihub_source,
        force=force,
        android_app=android_app,
    )
    options.check()  # bad options fail before anything is lowered
    calibration_images = _calibration_images(calibration, height, width) if int8 else []
    console.print(f"compiling {type(model).__name__} {name} at {height}x{width} into {folder}/")
    compile_model(model, height, width, folder, options, calibration_images, log=console.print)
    console.print(f"artifacts and compile.json in {folder}/")


def _stage_teacher(checkpoint: Path | None, teacher_path: Path | None, untrained: str | None):
    """The teacher whose stage programs are built, and its space's name (the stage-program folder's)."""
    from edgeens.models import Restormer, untrained_model

    if untrained:
        return untrained_model("restormer", untrained), untrained
    path = teacher_path or checkpoint
    if path is None:
        raise ValueError("--stages needs the teacher: --teacher PATH (or --untrained tiny|paper)")
    return Restormer.from_checkpoint(path), Path(path).stem


def _calibration_images(folder: Path | None, height: int, width: int):
    """Calibration batches for int8: centre crops of a folder's images, or of the bundled photos."""
    import numpy as np
    import torch

    from edgeens.data.bundled import bundled_split
    from edgeens.data.images import read_image

    if folder is None:
        images = list(bundled_split("train").values())
    else:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
        if not files:
            raise ValueError(f"calibration folder {folder} holds no .png/.jpg images")
        images = [read_image(p) for p in files[:8]]
    batches = []
    for image in images:
        h, w = image.shape[:2]
        if h < height or w < width:
            continue
        top, left = (h - height) // 2, (w - width) // 2
        crop = np.ascontiguousarray(image[top : top + height, left : left + width]).astype(np.float32)
        batches.append(torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0))
    if not batches:
        raise ValueError(f"no calibration image is at least {height}x{width}; give --calibration with larger images")
    return batches


@_command()
def profile(
    device: str = typer.Option("host", help="host (this machine), or a Qualcomm AI Hub device or chipset name."),
    preset: str = typer.Option(None, help="Space of a preset teacher (tiny, paper), random weights: latency only."),
    teacher_path: Path = typer.Option(None, "--teacher", help="Teacher checkpoint whose space is profiled."),
    pool: Path = typer.Option(None, help="Block pool: time the distilled surrogates (weights do not change latency)."),
    families: str = typer.Option(None, help="Surrogate families without a pool (default M,S,G): e.g. M or M,L,S,G."),
    size: str = typer.Option("256", help="Input size: 256 or HxW, multiples of 8."),
    runtime: str = typer.Option("executorch", help="Host runtime: executorch (XNNPACK) or onnxruntime."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="Runtime threads (recorded in the table)."),
    jobs: int = typer.Option(
        1, callback=_workers("--jobs"), help="Programs lowered in parallel processes (timing is always alone)."
    ),
    out: Path = typer.Option(Path("profiles"), help="Folder of latency tables."),
    programs: Path = typer.Option(None, help="Folder of stage programs (default: exports/stages-<space>-<HxW>)."),
    validate: int = typer.Option(0, min=0, help="Also measure N architectures end to end and report the fit."),
    reports: Path = typer.Option(Path("reports"), help="Folder for the validation table and plot."),
    validate_programs: str = typer.Option(
        "lowered",
        help="Validation programs: lowered (each architecture lowered whole) or linked (from the stage programs; "
        "timed in the table's own rounds when the table is measured in the same run).",
    ),
    validate_spacing: str = typer.Option(
        "linear", help="Validation architectures evenly spaced in linear or log latency."
    ),
    min_repeats: int = typer.Option(10, min=1, help="Timed runs per program, at least."),
    max_repeats: int = typer.Option(100, min=1, help="Timed runs per program, at most."),
    min_samples: int = typer.Option(
        3, min=1, help="Timed runs of a program slower than the time budget (seconds-long stacks), at least."
    ),
    rounds: int = typer.Option(
        2, min=1, help="Shuffled rounds over all programs (each gets its share of the runs in every round)."
    ),
    remeasure: bool = typer.Option(False, help="Measure again even if the table exists (else it is reused)."),
    repeat_check: bool = typer.Option(False, help="Measure the table a second time and compare entry by entry."),
    hub_runtime: str = typer.Option("tflite", help="AI Hub runtime: tflite, qnn_context_binary or onnx."),
    hub_poll: float = typer.Option(10.0, help="Seconds between AI Hub job status checks."),
) -> None:
    """Measure the latency of every (stage, choice) of a search space and of the fixed part: a latency table for
    the search's calibrated penalty. `--validate N` checks the table against N whole architectures."""
    _quiet_toolchain()

    from edgeens.compile.artifact import parse_size
    from edgeens.models import Restormer, untrained_model
    from edgeens.models.space import DEFAULT_FAMILIES, PRESETS, SearchSpace, parse_families
    from edgeens.profile.correlate import spread_architectures
    from edgeens.profile.host import TimingPolicy, profile_command, profile_host
    from edgeens.profile.table import LatencyTable, existing_table
    from edgeens.rundir import stage_programs_folder

    height, width = parse_size(size)
    if (preset is None) == (teacher_path is None):
        raise ValueError("name the space to profile: --preset tiny|paper, or --teacher CHECKPOINT")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        teacher_model = untrained_model("restormer", preset)
        space_name = preset
    else:
        teacher_model = Restormer.from_checkpoint(teacher_path)
        space_name = teacher_path.stem
    surrogates = None
    if pool is not None:
        from edgeens.train.pool import load_pool

        surrogates = load_pool(pool, teacher_model)
        if families is not None:
            raise ValueError("--families comes from the pool's manifest when --pool is given; drop one of them")
    families = families or ("" if surrogates else DEFAULT_FAMILIES)
    space = surrogates.space if surrogates else SearchSpace(teacher_model.config, parse_families(families))
    # One programs folder per teacher and size, whatever the families (it grows); one table per family set.
    folder = programs or stage_programs_folder("exports", space_name, height, width)
    space_name += space.name_suffix
    # The command that reproduces this table (from the resolved options: sys.argv is not ours under a runner).
    space_args = ["--preset", preset] if preset else ["--teacher", str(teacher_path)]
    policy = TimingPolicy(
        min_repeats=min_repeats, max_repeats=max(min_repeats, max_repeats), min_samples=min_samples, rounds=rounds
    )
    command = profile_command(
        device, space_args, families, height, width, runtime, threads, policy, str(pool) if pool else None
    )
    if device != "host":
        if validate or repeat_check:
            raise ValueError("--validate and --repeat-check measure on this machine: use them with --device host")
        from edgeens.profile.aihub import profile_on_hub

        with console.status("profiling on Qualcomm AI Hub") as status:
            table = profile_on_hub(
                teacher_model,
                height,
                width,
                folder,
                device,
                hub_runtime,
                surrogates,
                space_name,
                command,
                poll_s=hub_poll,
                progress=status.update,
                space=space,
            )
        _print_table(table, table.save(out))
        return
    if validate_programs not in ("lowered", "linked"):
        raise ValueError(f"--validate-programs is lowered or linked, not {validate_programs!r}")

    def measure(architectures: list[str] | None = None) -> LatencyTable:
        with console.status("profiling") as status:
            return profile_host(
                teacher_model,
                height,
                width,
                folder,
                runtime,
                threads,
                policy,
                space_name,
                command,
                surrogates,
                progress=status.update,
                jobs=jobs,
                space=space,
                architectures=architectures,
            )

    table = existing_table(out, teacher_model, height, width, runtime, threads, space_name, space)
    # Linked validation architectures are timed in the table's own shuffled rounds, so that drift of the
    # machine between two sessions cannot pass for a prediction error; choosing them needs a table first.
    interleave = bool(validate) and validate_programs == "linked" and runtime == "executorch"
    if table is None or remeasure:
        architectures = None
        if interleave:
            if table is None:
                console.print("measuring the table once to choose the validation architectures")
                table = measure()
                table.save(out)
            architectures = spread_architectures(table, validate, spacing=validate_spacing)
        table = measure(architectures)
        path = table.save(out)
    else:
        path = out / table.filename()
        console.print(f"reusing {path} (measured {table.date}; --remeasure to measure again)")
        if stale := table.stale_programs():
            console.print(f"[yellow]note:[/yellow] {stale}")
    _print_table(table, path)
    if repeat_check:
        _repeat_check(table, measure(), path, reports)
    if validate:
        linked = validate_programs == "linked"
        _validate(
            table,
            path,
            validate,
            teacher_model,
            folder,
            policy,
            surrogates,
            reports,
            jobs,
            linked,
            validate_spacing,
        )


def _print_table(table, path: Path) -> None:
    view = Table(title=f"{path}  ({table.runtime}, {table.threads} thread(s), {table.height}x{table.width})")
    for column in ("stage", "choice", "median ms", "p10-p90 ms", "runs", ""):
        view.add_column(column)
    view.add_row(
        "fixed",
        "-",
        f"{table.fixed.median_ms:.3f}",
        f"{table.fixed.p10_ms:.3f}-{table.fixed.p90_ms:.3f}",
        str(table.fixed.samples),
        "noisy" if table.fixed.noisy else "",
    )
    for stage, row in table.stages.items():
        for choice, lat in row.items():
            view.add_row(
                stage,
                choice,
                f"{lat.median_ms:.3f}",
                f"{lat.p10_ms:.3f}-{lat.p90_ms:.3f}",
                str(lat.samples),
                "noisy" if lat.noisy else "",
            )
    console.print(view)


def _repeat_check(first, second, path: Path, reports: Path) -> None:
    import json

    from edgeens.profile.table import compare_tables

    comparison = compare_tables(first, second)
    reports.mkdir(parents=True, exist_ok=True)
    target = reports / f"repeatability--{path.stem}.json"
    target.write_text(json.dumps(comparison, indent=1) + "\n")
    console.print(
        f"repeat run: {comparison['agreeing']}/{comparison['entries']} medians within "
        f"{comparison['tolerance']:.0%}; largest difference {comparison['largest_difference']:.1%} "
        f"({comparison['largest_key']}); flagged noisy: {', '.join(comparison['flagged']) or 'none'} -> {target}"
    )


def _validate(
    table,
    path: Path,
    count: int,
    teacher_model,
    folder: Path,
    policy,
    surrogates,
    reports: Path,
    jobs: int,
    linked: bool,
    spacing: str,
) -> None:
    import json

    from edgeens.profile.correlate import plot_validation, spread_architectures, validation_report
    from edgeens.profile.host import INTERLEAVED, measure_architectures

    if table.end_to_end_programs == INTERLEAVED:  # its architectures were chosen and timed with the table
        if len(table.end_to_end) != count:
            raise ValueError(
                f"this table's {len(table.end_to_end)} validation architectures were timed in its own rounds; "
                f"add --remeasure to validate {count}"
            )
        architectures = list(table.end_to_end)
    else:
        architectures = spread_architectures(table, count, spacing=spacing)
    with console.status("validating") as status:
        measure_architectures(
            table,
            architectures,
            teacher_model,
            folder,
            path,
            policy,
            surrogates,
            progress=lambda text: status.update(text),
            jobs=jobs,
            linked=linked,
        )
    report = validation_report(table)
    reports.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    (reports / f"validation--{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_validation(table, report, str(reports / f"validation--{stem}.png"))
    for name in ("calibrated", "heuristic"):
        r = report[name]
        console.print(
            f"{name}: Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}, Kendall tau-b {r['kendall_tau_b']:.3f}"
            + (f", MAPE {r['mape']:.1%}, within 10% {r['within_10pct']:.0%}" if "mape" in r else "")
            + f"; linear fit MAPE {r['fit_mape']:.1%}"
        )
    console.print(f"validation of {report['architectures']} architectures: {reports}/validation--{stem}.{{json,png}}")


@_command()
def search(
    teacher_path: Path = typer.Option(
        Path("runs/default/teacher/teacher.safetensors"), "--teacher", help="The teacher Restormer checkpoint."
    ),
    pool: Path = typer.Option(Path("runs/default/pool"), help="Block pool of `edgeens distill` for this teacher."),
    table: Path = typer.Option(None, help="Latency table of `edgeens profile` (the calibrated penalty)."),
    penalty: str = typer.Option("calibrated", help="calibrated (measured latency, needs --table) or heuristic."),
    families: str = typer.Option(None, help="Search only these of the pool's families (M: the paper's search)."),
    size: str = typer.Option("256", help="Deployment input size the latency table must have been measured at."),
    degradation: str = typer.Option("gaussian_noise", help="Degradation of the validation pairs (as the teacher's)."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    budget: int = typer.Option(60, min=1, help="Architectures to evaluate, the initial design included."),
    initial: int = typer.Option(16, min=1, help="Uniform random architectures before the first model fit."),
    batch: int = typer.Option(4, min=1, help="Architectures proposed per iteration (q)."),
    seed: int = typer.Option(0, help="Seed of the initial design and the MC samplers."),
    encoding: str = typer.Option("categorical", help="categorical (edgeens) or relaxed (the paper's thresholds)."),
    top_k: int = typer.Option(5, min=1, help="Candidates nearest the knee to hand to fine-tuning."),
    max_drop: float = typer.Option(None, help="Largest PSNR drop (dB) that counts (default: from the initial design)."),
    max_penalty: float = typer.Option(
        None, help="Penalty budget (ms of stages with --table): search within it, candidates the best inside it."
    ),
    out: Path = typer.Option(Path("runs/default/search"), help="Search folder (resumes its trials.jsonl)."),
    compare: bool = typer.Option(
        False, help="Compare ENS, its paper encoding, random, NSGA-II and the rule-based hybrid."
    ),
    seeds: int = typer.Option(5, min=1, help="Seeds per method with --compare."),
    exhaustive: bool = typer.Option(False, help="With --compare: evaluate every architecture for the true front."),
    threads: int = typer.Option(
        1, callback=_workers("--threads"), help="torch threads (BoTorch's loop is fastest with 1 on 2 cores)."
    ),
    jobs: int = typer.Option(1, callback=_workers("--jobs"), help="Evaluate each batch in this many worker processes."),
    force: bool = typer.Option(False, help="Discard the folder's trials and start over."),
) -> None:
    """ENS: search which stages to swap, against validation PSNR and a penalty; writes the trial log, the front,
    its knee and the candidates for fine-tuning (`--compare`: ENS against the baselines, hypervolume curves)."""
    _quiet_toolchain()
    import contextlib

    import numpy as np
    import torch

    from edgeens.compile.artifact import parse_size
    from edgeens.files import write_json
    from edgeens.models import Restormer
    from edgeens.models.checkpoint import weights_hash
    from edgeens.profile.table import LatencyTable, calibrated_penalty, heuristic_penalty
    from edgeens.report.search import plot_compare, plot_front
    from edgeens.search.ens import Problem, SearchSettings
    from edgeens.search.evaluate import SearchError, WorkerPool
    from edgeens.search.loop import compare_methods, fraction_at
    from edgeens.search.step import SearchRequest, evaluator_for, objective, search_step
    from edgeens.train.pool import load_pool

    torch.set_num_threads(threads)
    height, width = parse_size(size)
    settings = SearchSettings(budget=budget, initial=initial, batch=batch, seed=seed, encoding=encoding)
    teacher_model = Restormer.from_checkpoint(teacher_path)
    surrogates = load_pool(pool, teacher_model)
    space = surrogates.space
    if families is not None:  # a subset of the pool's families, e.g. M for the paper's MambaIR-only search
        space = space.with_families(_pool_families(space, families))
    settings.check(space.size)
    if penalty == "calibrated":
        if table is None:
            raise SearchError(
                "the calibrated penalty needs a latency table: --table profiles/<device>--<runtime>--<HxW>--"
                "<space>.json (from edgeens profile), or --penalty heuristic for the paper's proxy"
            )
        latency = LatencyTable.load(table)
        latency.check_fits(space, height, width)
        stage_costs, penalty_label, source = calibrated_penalty(latency), "predicted latency (ms)", table.name
    elif penalty == "heuristic":
        stage_costs, penalty_label, source = heuristic_penalty(space), "heuristic penalty", "heuristic"
    else:
        raise SearchError(f"unknown penalty {penalty!r}; choose calibrated (with --table) or heuristic")
    request = SearchRequest(
        teacher_model,
        surrogates,
        pool,
        space,
        stage_costs,
        source,
        (height, width),
        degradation,
        sigma,
        settings,
        out,
        top_k,
        max_drop,
        max_penalty,
        force,
    )
    if compare:
        evaluator = evaluator_for(request)
        problem = Problem(space, stage_costs)
        with console.status("comparing search methods") as status:
            evaluate = objective(evaluator)
            result = compare_methods(problem, evaluate, out, settings, seeds, exhaustive, progress=status.update)
        # The command that reproduces it, from the resolved options (sys.argv is not ours under a runner).
        penalty_args = ["--table", str(table)] if penalty == "calibrated" else ["--penalty", "heuristic"]
        result["command"] = shlex.join(
            ["edgeens", "search", "--compare", "--teacher", str(teacher_path), "--pool", str(pool), *penalty_args]
            + ["--families", ",".join(f.letter for f in space.families)]
            + ["--size", f"{height}x{width}", "--degradation", degradation, "--sigma", f"{sigma:g}"]
            + ["--budget", str(budget), "--initial", str(initial), "--batch", str(batch), "--seeds", str(seeds)]
            + (["--exhaustive"] if exhaustive else [])
            + ["--out", str(out)]
        )
        result["penalty"] = source
        result["teacher_psnr"] = evaluator.teacher_psnr
        result["teacher_sha256"] = weights_hash(teacher_model)
        write_json(out / "compare.json", result)
        plot_compare(result, out / "compare.png")
        view = Table(title=f"hypervolume / {'true front' if exhaustive else 'best found'} ({seeds} seeds)")
        checkpoints = sorted({n for n in (20, 40, 60, budget) if n <= budget})
        for column in ("method", *(f"@{n} median (min-max)" for n in checkpoints)):
            view.add_column(column)
        for method in result["curves"]:
            cells = []
            for n in checkpoints:
                values = fraction_at(result, method, n)
                cells.append(f"{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
            view.add_row(method, *cells)
        console.print(view)
        console.print(f"written: {out}/compare.json, {out}/compare.png")
        return
    with console.status("searching") as status, contextlib.ExitStack() as stack:
        workers = None
        if jobs > 1:
            workers = stack.enter_context(WorkerPool(teacher_path, pool, degradation, sigma, jobs))
        searched = search_step(request, progress=status.update, batch_evaluate=workers)
    front = searched.front
    from edgeens.search.ens import TrialLog

    plot_front(TrialLog(out / "trials.jsonl").records, front, out / "pareto.png", penalty_label)
    view = Table(
        title=f"Pareto front after {front['evaluations']} evaluations (teacher {searched.teacher_psnr:.2f} dB)"
    )
    for column in ("architecture", "PSNR dB", "drop dB", penalty_label, ""):
        view.add_column(column)
    candidates = {c["architecture"] for c in front["candidates"]}
    for point in front["front"]:
        mark = "knee" if point["architecture"] == front["knee"]["architecture"] else ""
        mark += " candidate" if point["architecture"] in candidates else ""
        view.add_row(
            point["architecture"], f"{point['psnr']:.2f}", f"{point['psnr_drop']:+.3f}", f"{point['penalty']:.4g}", mark
        )
    console.print(view)
    console.print(f"{front['knee_method']}")
    console.print(f"candidates for fine-tuning: {', '.join(c['architecture'] for c in front['candidates'])}")
    console.print(f"written: {out}/trials.jsonl, {out}/front.json, {out}/pareto.png")


@_command()
def finetune(
    teacher_path: Path = typer.Option(
        Path("runs/default/teacher/teacher.safetensors"), "--teacher", help="The teacher Restormer checkpoint."
    ),
    pool: Path = typer.Option(Path("runs/default/pool"), help="Block pool the hybrids are composed from."),
    search_dir: Path = typer.Option(
        Path("runs/default/search"), "--search", help="Search folder whose front.json names the candidates."
    ),
    arch: list[str] = typer.Option(None, help="Fine-tune these architectures instead (repeat the option)."),
    out: Path = typer.Option(Path("runs/default/finetune"), help="Folder: one resumable run per candidate."),
    degradation: str = typer.Option("gaussian_noise", help="Degradation of the training and validation pairs."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    iterations: int = typer.Option(300, min=1, help="Iterations per candidate (the teacher's recipe, scaled)."),
    max_patch: int = typer.Option(
        64, min=16, callback=_side("--max-patch"), help="Largest progressive patch (Restormer: 384)."
    ),
    checkpoint_every: int = typer.Option(100, min=1, help="Iterations between resumable checkpoints."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="torch intra-op threads per process."),
    jobs: int = typer.Option(
        1, callback=_workers("--jobs"), help="Candidates fine-tuned at once in worker processes (not with torchrun)."
    ),
) -> None:
    """Fine-tune the search's candidates end to end (DDP under torchrun) and keep the best validation PSNR."""

    import torch

    from edgeens.data.photos import training_photos, validation_crops
    from edgeens.data.transforms import ProgressiveSchedule
    from edgeens.files import read_json
    from edgeens.models import Restormer
    from edgeens.search.evaluate import SearchError
    from edgeens.train.finetune import finetune_candidates
    from edgeens.train.pool import load_pool
    from edgeens.train.teacher import SyntheticPairs, TeacherRecipe

    torch.set_num_threads(threads)
    distributed, rank = _start_distributed()
    try:
        candidates = list(arch or [])
        if not candidates:
            front = search_dir / "front.json"
            if not front.is_file():
                raise SearchError(f"{front} does not exist: run edgeens search first, or name candidates with --arch")
            fix = "run edgeens search with the same options again: it rewrites front.json from trials.jsonl"
            candidates = [c["architecture"] for c in read_json(front, fix).get("candidates", [])]
        teacher_model = Restormer.from_checkpoint(teacher_path)
        surrogates = load_pool(pool, teacher_model)
        recipe = TeacherRecipe(
            iterations=iterations, schedule=ProgressiveSchedule().scaled(max_patch), checkpoint_every=checkpoint_every
        )
        data = SyntheticPairs(training_photos(), degradation, sigma)
        summary = finetune_candidates(
            teacher_model,
            surrogates,
            candidates,
            data,
            recipe,
            out,
            validation_crops(degradation, sigma),
            show_progress=rank == 0,
            jobs=jobs,
        )
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    if rank != 0:
        return
    view = Table(title=f"fine-tuned candidates ({iterations} iterations, {summary['ranks']} rank(s))")
    for column in ("architecture", "composed dB", "fine-tuned dB", ""):
        view.add_column(column)
    for row in summary["candidates"]:
        mark = "best" if row["architecture"] == summary["best"] else ""
        view.add_row(row["architecture"], f"{row['psnr_composed']:.2f}", f"{row['psnr_finetuned']:.2f}", mark)
    console.print(view)
    console.print(
        f"teacher {summary['teacher_psnr']:.2f} dB; best {summary['best']} -> {out}/best.safetensors "
        f"(edgeens compile {out}/best.safetensors)"
    )


@_command()
def restore(
    inputs: list[Path] = typer.Argument(..., help="Images (PNG, JPEG, TIFF) or folders of them."),
    model: Path = typer.Option(..., help="Checkpoint (Restormer, MambaIRUNet, hybrid), .pte or .onnx."),
    out: Path = typer.Option(Path("restored"), help="Folder for the restored images (same names and formats)."),
    tile: int = typer.Option(
        512,
        min=0,
        callback=_side("--tile", allow_zero=True),
        help="Tile side for eager models (0: whole image); programs use theirs.",
    ),
    overlap: int = typer.Option(32, min=0, help="Pixels shared by neighbouring tiles (blended linearly)."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="Runtime threads (recorded with the timings)."),
) -> None:
    """Restore photos of any size with a checkpoint, an ExecuTorch program or an ONNX file, in blended tiles."""
    _quiet_toolchain()
    import resource
    import time

    from edgeens.data.images import ImageError
    from edgeens.restore import list_inputs, load_restorer, output_paths, read_photo, restore_array, write_photo

    files: list[Path] = []
    written: list[Path] = []
    try:
        files = list_inputs(inputs)
        targets = output_paths(files, out)
        restorer = load_restorer(model, threads)
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise ImageError(f"output folder {out} is not writable; choose another with --out")
        view = Table(title=f"{restorer.name}, {threads} thread(s)")
        for column in ("image", "size", "tiles of", "seconds", "written"):
            view.add_column(column)
        with console.status("restoring") as status:
            for path, target in zip(files, targets, strict=True):
                photo = read_photo(path)
                start = time.perf_counter()
                photo.rgb = restore_array(
                    restorer,
                    photo.rgb,
                    tile,
                    overlap,
                    progress=lambda done, total, name=path.name: status.update(f"{name}: tile {done}/{total}"),
                )
                seconds = time.perf_counter() - start
                write_photo(target, photo)
                written.append(target)
                size = restorer.size or ((tile, tile) if tile else None)
                tiles = f"{size[0]}x{size[1]}" if size else "whole"
                h, w = photo.rgb.shape[:2]
                view.add_row(path.name, f"{w}x{h}", tiles, f"{seconds:.2f}", str(target))
    except KeyboardInterrupt:
        done = f": {', '.join(map(str, written))}" if written else ""
        console.print(f"interrupted: {len(written)} of {len(files)} photo(s) written{done}")
        console.print(f"not restored: {', '.join(map(str, files[len(written) :]))}")
        raise typer.Exit(code=130) from None
    console.print(view)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    console.print(f"peak memory of this process: {peak:.2f} GiB")


@_command()
def bench(
    model: list[Path] = typer.Option(None, help="A model to compare (repeat): checkpoint, .pte or .onnx."),
    baseline: list[str] = typer.Option(
        None, help="A classical denoiser beside the models (repeat): nlm, wavelet or tv (scikit-image)."
    ),
    data: Path = typer.Option(None, help="Paired folder (any layout edgeens reads); default: --split's photos."),
    split: str = typer.Option(
        "test", help="Without --data: photo catalogue split (test, val, train; make photos installs it) or bundled."
    ),
    degradation: str = typer.Option("gaussian_noise", help="Without --data: degradation of the photos."),
    sigma: float = typer.Option(25.0, help="Noise level (0-255 scale) of the photos, and told to the baselines."),
    out: Path = typer.Option(Path("bench"), help="Folder for bench.csv and bench.md."),
    tile: int = typer.Option(
        512, min=0, callback=_side("--tile", allow_zero=True), help="Tile side for eager models (0: whole image)."
    ),
    overlap: int = typer.Option(32, min=0, help="Pixels shared by neighbouring tiles."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="Runtime threads (recorded)."),
) -> None:
    """Compare models and classical denoisers on the same images: PSNR / SSIM and latency per image."""
    _quiet_toolchain()
    import torch

    from edgeens.classical import classical_restorer
    from edgeens.data.paired import PairedImages, find_pairs
    from edgeens.data.photos import degraded_pairs
    from edgeens.harness import benchmark_models, summarize, write_results
    from edgeens.restore import load_restorer
    from edgeens.train.teacher import bundled_validation

    torch.set_num_threads(threads)  # the classical methods' numpy and scikit-image calls too
    if not model and not baseline:
        raise ValueError("nothing to compare: give at least one --model or --baseline")
    if data is None:
        if split == "bundled":
            found = bundled_validation(degradation, sigma)
            pairs = [(f"bundled-{i}", lq, gt) for i, (lq, gt) in enumerate(found)]
        elif split in ("train", "val", "test"):
            pairs = [(n, lq, gt) for n, (lq, gt) in degraded_pairs(split, degradation, sigma).items()]
        else:
            raise ValueError(f"--split must be test, val, train or bundled, got {split!r}")
        note = f"Photos ({split}), {degradation} (sigma {sigma:g}), {threads} thread(s)."
    else:
        found = find_pairs(data)
        images = PairedImages(found, preload_limit=0)
        pairs = [((lq[0] if isinstance(lq, tuple) else lq).name, *images.read(i)) for i, (lq, _) in enumerate(found)]
        note = f"Pairs from {data}, {threads} thread(s)."
    restorers = [load_restorer(path, threads) for path in model or []]
    restorers += [classical_restorer(name, sigma) for name in baseline or []]
    with console.status("benchmarking") as status:
        rows = benchmark_models(restorers, pairs, tile, overlap, progress=status.update)
    csv_path, md_path = write_results(rows, out, note)
    view = Table(title=note)
    for column in ("model", "images", "PSNR dB", "SSIM", "s / image"):
        view.add_column(column)
    for s in summarize(rows):
        view.add_row(s["model"], str(s["images"]), f"{s['psnr']:.2f}", f"{s['ssim']:.4f}", f"{s['seconds']:.3f}")
    console.print(view)
    console.print(f"written: {csv_path}, {md_path}")


@_command("run")
def run_command(
    out: Path = typer.Option(Path("runs/demo"), help="Run folder (a re-run continues it)."),
    preset: str = typer.Option("tiny", help="Teacher size / search space: tiny or paper."),
    teacher_path: Path = typer.Option(None, "--teacher", help="Adopt this Restormer checkpoint as the teacher."),
    degradation: str = typer.Option("gaussian_noise", help="Task: gaussian_noise, motion_blur or rain_streaks."),
    sigma: float = typer.Option(25.0, help="Noise level for gaussian_noise (0-255 scale)."),
    device: str = typer.Option("host", help="host, or a Qualcomm AI Hub device for the latency table."),
    size: int = typer.Option(256, help="Deployment input size (square; a multiple of 8)."),
    penalty: str = typer.Option("calibrated", help="calibrated (the latency table) or heuristic (the paper's)."),
    families: str = typer.Option(None, help="Surrogate families (default M,S,G; M alone: the paper's search)."),
    speedup: float = typer.Option(None, help="Latency budget: search within teacher/SPEEDUP (default: the knee)."),
    teacher_iterations: int = typer.Option(1500, min=1, help="Teacher training iterations (if one is trained)."),
    distill_steps: int = typer.Option(150, min=1, help="Distillation steps per surrogate."),
    budget: int = typer.Option(40, min=2, help="Search evaluations."),
    top_k: int = typer.Option(3, min=1, help="Candidates near the knee to fine-tune."),
    finetune_iterations: int = typer.Option(100, min=1, help="Fine-tuning iterations per model."),
    profiles: Path = typer.Option(
        Path("profiles"),
        help="Folder of committed latency tables: read when one fits, written only with --save-profiles.",
    ),
    save_profiles: bool = typer.Option(False, help="Also write a table the run measures into --profiles."),
    reports: Path = typer.Option(
        None, help="Also copy the report to <reports>/<run folder name>/ (it is always in <run>/report/)."
    ),
    steps: str = typer.Option(",".join(STEP_NAMES), help="Comma-separated steps to run (default: all)."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="torch intra-op threads."),
    jobs: int = typer.Option(
        os.cpu_count() or 1,
        callback=_workers("--jobs"),
        help="Worker processes (one thread each) for distillation, training, lowering.",
    ),
) -> None:
    """The whole pipeline on one run folder: teacher -> distill -> profile -> search -> fine-tune -> compile ->
    compare -> report. Every step is skipped when its outputs exist, so a re-run continues an interrupted one."""
    _quiet_toolchain()
    import torch

    from edgeens.run import RunConfig, run_pipeline

    torch.set_num_threads(threads)
    config = RunConfig(
        run_dir=out,
        preset=preset,
        degradation=degradation,
        sigma=sigma,
        teacher=teacher_path,
        teacher_iterations=teacher_iterations,
        distill_steps=distill_steps,
        device=device,
        size=size,
        profiles=profiles,
        save_profiles=save_profiles,
        penalty=penalty,
        **({"families": families} if families else {}),
        speedup=speedup,
        budget=budget,
        top_k=top_k,
        finetune_iterations=finetune_iterations,
        reports=reports,
        jobs=jobs,
        only_steps=tuple(s.strip() for s in steps.split(",") if s.strip()),
    )
    try:
        summary = run_pipeline(config, say=console.print)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: run `edgeens run --out {out}` again to continue where it stopped")
        raise typer.Exit(code=130) from None
    view = Table(title=f"edgeens run: {out}")
    for column in ("step", "status", "seconds"):
        view.add_column(column)
    for name, entry in summary["steps"].items():
        view.add_row(name, "reused" if entry["reused"] else "done", f"{entry['seconds']:.0f}")
    console.print(view)


@_command()
def sweep(
    sizes: str = typer.Option("64,128,256,384,512", help="Input sides to measure, comma-separated."),
    width: int = typer.Option(48, min=8, help="Channels of each block (48: the paper's level 1)."),
    threads: int = typer.Option(1, callback=_workers("--threads"), help="Runtime threads (recorded)."),
    memory_limit: float = typer.Option(4.0, help="Skip sizes whose attention matrix exceeds this many GiB."),
    reports: Path = typer.Option(Path("reports"), help="Folder for the plot and the table."),
) -> None:
    """Latency, FLOPs and peak memory of one Restormer, one MambaIR and one plain self-attention block across
    input sizes, measured in ExecuTorch on this machine (the paper's Figure 1)."""
    _quiet_toolchain()
    from edgeens.compile.artifact import now, tool_versions
    from edgeens.profile.host import host_description
    from edgeens.profile.sweep import plot_sweep, resolution_sweep, save_sweep

    try:
        sides = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        console.print(f"[bold red]error:[/] --sizes must be comma-separated integers, got {sizes!r}")
        raise typer.Exit(code=2) from None
    if not sides or any(s % 8 or s <= 0 for s in sides):
        console.print(f"[bold red]error:[/] every size must be a positive multiple of 8, got {sides}")
        raise typer.Exit(code=2)
    with console.status("sweeping") as status:
        rows = resolution_sweep(sides, width, threads, memory_limit_gib=memory_limit, progress=status.update)
    reports.mkdir(parents=True, exist_ok=True)
    host = host_description()
    meta = {
        "device": "host",
        "cpu": host["cpu"],
        "threads": threads,
        "width": width,
        "date": now(),
        "versions": tool_versions(),
        "command": f"edgeens sweep --sizes {sizes} --width {width} --threads {threads}",
    }
    save_sweep(rows, meta, reports / "resolution-sweep--host.json")
    plot_sweep(
        rows,
        str(reports / "resolution-sweep--host.png"),
        f"one block of width {width} on {host['cpu']}, ExecuTorch XNNPACK, {threads} thread(s)",
    )
    view = Table(title=f"resolution sweep, width {width}, {threads} thread(s)")
    for column in ("block", "size", "GFLOPs", "median ms", "peak MiB"):
        view.add_column(column)
    for r in rows:
        if "skipped" in r:
            view.add_row(r["block"], str(r["size"]), "-", r["skipped"], "-")
        else:
            view.add_row(
                r["block"],
                str(r["size"]),
                f"{r['flops'] / 1e9:.2f}",
                f"{r['latency']['median_ms']:.2f}",
                f"{r['peak_memory_mib']:.0f}",
            )
    console.print(view)
    console.print(f"written: {reports}/resolution-sweep--host.{{json,png}}")


if __name__ == "__main__":
    app()
