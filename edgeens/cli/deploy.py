"""`edgeens compile`, `profile` and `sweep`: lowering and latency (edgeens.compile, edgeens.profile)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

import edgeens.cli.views as views
from edgeens.cli.options import (
    MEASURE,
    PIPELINE,
    Architecture,
    CalibrationFolder,
    CalibrationImages,
    DataFolder,
    Degradation,
    FloatStages,
    HybridPool,
    HybridTeacher,
    Jobs,
    ModelCheckpoint,
    QuantizeScope,
    Sigma,
    Size,
    Threads,
    command,
    console,
)
from edgeens.workers import process_prologue


def _model_to_compile(
    checkpoint: Path | None,
    teacher_path: Path | None,
    pool: Path | None,
    arch: str | None,
    untrained: str | None,
    kind: str,
):
    """The model named on the command line: a checkpoint, a teacher + pool + architecture, or an untrained preset."""
    from edgeens.models import load_model, untrained_model
    from edgeens.train.pool import compose_hybrid

    named = {"CHECKPOINT": checkpoint, "--teacher": teacher_path, "--untrained": untrained}
    given = [name for name, value in named.items() if value]
    if len(given) != 1:
        raise ValueError(
            "name exactly one model: a CHECKPOINT (Restormer, MambaIRUNet or saved hybrid), --teacher with --pool "
            f"and --arch (a hybrid), or --untrained tiny|paper with --kind; got {', '.join(given) or 'none'}"
        )
    if checkpoint:
        return load_model(checkpoint)
    return untrained_model(kind, untrained, arch) if untrained else compose_hybrid(teacher_path, pool, arch)


@command(PIPELINE, "compile")
def compile_command(
    checkpoint: ModelCheckpoint = None,
    teacher_path: HybridTeacher = None,
    pool: HybridPool = None,
    arch: Architecture = None,
    untrained: str = typer.Option(None, help="Random weights at a preset size (tiny, paper): export checks only."),
    kind: str = typer.Option("restormer", help="With --untrained: restormer, mambairunet or hybrid (needs --arch)."),
    size: Size = "256",
    out: Path = typer.Option(None, help="Output folder (default: exports/<model>-<HxW>)."),
    target: list[str] = typer.Option(
        ["executorch", "onnx"], help="executorch, onnx, aihub, android-assets (repeatable)."
    ),
    android_app: Path = typer.Option(Path("android_app"), help="The demo app that android-assets bundles into."),
    backend: str = typer.Option("xnnpack", help="ExecuTorch backend: xnnpack, or qnn (needs QNN_SDK_ROOT)."),
    quantize: str = typer.Option(
        "none",
        help="Precision: none (float), w8a8 (ExecuTorch/XNNPACK, ONNX, AI Hub) or w8a16 (ONNX, AI Hub's NPU); "
        "calibrated on degraded crops of the task's training split (--data, or the photos with --degradation).",
    ),
    int8: bool = typer.Option(False, "--int8", hidden=True, help="Deprecated: --quantize w8a8."),
    data: DataFolder = None,
    degradation: Degradation = None,
    sigma: Sigma = None,
    scope: QuantizeScope = "conv",
    calibration: CalibrationFolder = None,
    calibration_images: CalibrationImages = 16,
    float_stages: FloatStages = None,
    aihub_device: str = typer.Option(None, help="Qualcomm AI Hub device or chipset, e.g. 'Snapdragon 8 Elite QRD'."),
    aihub_runtime: str = typer.Option("tflite", help="AI Hub target runtime: tflite, qnn_context_binary, onnx."),
    aihub_source: str = typer.Option("export", help="Upload the torch.export program (export) or model.onnx (onnx)."),
    compute_unit: str = typer.Option("cpu", help="Where AI Hub runs the model: cpu, gpu or npu."),
    stages: bool = typer.Option(False, "--stages", help="Per-stage programs of the teacher's space instead."),
    families: str = typer.Option(
        None, help="With --stages and no pool: surrogate families of the space (default M,S,G, as profile)."
    ),
    force: bool = typer.Option(False, help="Replace another model's artifacts in the output folder."),
    threads: Threads = 1,
    jobs: Jobs = 1,
) -> None:
    """Lower a model to ExecuTorch (.pte), ONNX and/or Qualcomm AI Hub, run each artifact and check it against
    eager PyTorch; numbers go to compile.json beside the artifacts."""
    process_prologue(threads)

    from edgeens.compile.artifact import parse_size
    from edgeens.compile.pipeline import CompileOptions, compile_model

    height, width = parse_size(size)
    if stages:
        from edgeens.compile.stages import StageProgramsRequest, build_stage_programs
        from edgeens.rundir import stage_programs_folder
        from edgeens.train.pool import space_for

        need = "--stages needs the teacher: --teacher PATH (or --untrained tiny|paper)"
        teacher_model, space_name = _space_teacher(untrained, teacher_path or checkpoint, need)
        surrogates, space = space_for(teacher_model, pool, families)
        # The folder `edgeens profile` reads for this teacher and size: what is built here is not lowered again.
        folder = out or stage_programs_folder("exports", space_name, height, width)
        request = StageProgramsRequest(teacher_model, space, (height, width), folder, surrogates, jobs=jobs)
        manifest = build_stage_programs(request)
        console.print(views.stage_programs_view(manifest, folder, (height, width), threads))
        return
    model = _model_to_compile(checkpoint, teacher_path, pool, arch, untrained, kind)
    name = getattr(model, "architecture_string", None) or type(model).__name__.lower()
    folder = out or Path("exports") / f"{name}-{height}x{width}"
    targets = tuple(target)
    if int8:
        console.print("[yellow]--int8 is deprecated: it means --quantize w8a8 (and goes in the next release)[/]")
        quantize = "w8a8"
    options = CompileOptions(targets, backend, quantize, aihub_device=aihub_device, aihub_runtime=aihub_runtime)
    options = dataclasses.replace(
        options,
        aihub_source=aihub_source,
        force=force,
        android_app=android_app,
        aihub_compute_unit=compute_unit,
        quantize_scope=scope,
        float_stages=_names(float_stages),
    )
    options.check()  # bad options fail before anything is lowered
    inputs = []
    if options.precision != "fp32":
        inputs = _calibration(folder, calibration, data, degradation, sigma, height, width, calibration_images)
    console.print(f"compiling {type(model).__name__} {name} at {height}x{width} into {folder}/")
    compile_model(model, height, width, folder, options, inputs, log=console.print)
    console.print(f"artifacts and compile.json in {folder}/")


@command(MEASURE, "precision")
def precision_command(
    checkpoint: ModelCheckpoint = None,
    teacher_path: HybridTeacher = None,
    pool: HybridPool = None,
    arch: Architecture = None,
    data: DataFolder = None,
    degradation: Degradation = None,
    sigma: Sigma = None,
    size: int = typer.Option(256, min=16, help="Program input size (square); test photos go through in tiles of it."),
    precisions: str = typer.Option("fp32,w8a8,w8a16", help="Comma-separated: fp32, w8a8, w8a16."),
    runtimes: str = typer.Option("executorch,onnxruntime", help="Comma-separated: executorch, onnxruntime."),
    scope: QuantizeScope = "conv",
    calibration_images: CalibrationImages = 16,
    float_stages: FloatStages = None,
    qat_iterations: int = typer.Option(
        0,
        min=0,
        help="Quantization-aware fine-tuning iterations, run when post-training w8a8 loses > 0.3 dB (0: none).",
    ),
    qat_lr: float = typer.Option(2e-5, min=0, help="Learning rate of the quantization-aware fine-tuning."),
    sensitivity: bool = typer.Option(False, help="Also the per-stage table: w8a8 one stage at a time."),
    table: bool = typer.Option(True, help="The precision table (--no-table with --sensitivity: the stages alone)."),
    stages: str = typer.Option(None, help="With --sensitivity: only these stages (e.g. encoder1,latent)."),
    out: Path = typer.Option(None, help="Output folder (default: exports/precision-<model>)."),
    threads: Threads = 1,
) -> None:
    """Compile one model at every precision, score each program on the task's test photos (PSNR / SSIM against
    the clean images) and time them in the same rounds: what quantization costs and buys (precision.json/.md)."""
    process_prologue(threads)
    from edgeens.cli.options import open_task_here
    from edgeens.compile.quantize import parse_precision
    from edgeens.files import atomic_path
    from edgeens.precision import (
        PrecisionRequest,
        compare_precisions,
        markdown_table,
        sensitivity_markdown,
        stage_sensitivity,
    )
    from edgeens.train.qat import QATRecipe

    if size % 8:
        raise ValueError(f"--size must be a multiple of 8, got {size}")
    chosen = tuple(dict.fromkeys(parse_precision(p) for p in precisions.split(",") if p.strip()))
    model = _model_to_compile(checkpoint, teacher_path, pool, arch, None, "restormer")
    name = getattr(model, "architecture_string", None) or (checkpoint.stem if checkpoint else type(model).__name__)
    folder = out or Path("exports") / f"precision-{name}"
    task = open_task_here(folder, data, None, None, degradation, sigma, min_side=size)
    request = PrecisionRequest(
        model,
        name,
        task,
        folder,
        size=size,
        precisions=chosen,
        runtimes=tuple(r.strip() for r in runtimes.split(",") if r.strip()),
        calibration_images=calibration_images,
        quantize_scope=scope,
        threads=threads,
        stages=_names(stages),
        qat=QATRecipe(iterations=qat_iterations, lr=qat_lr, scope=scope) if qat_iterations else None,
        float_stages=_names(float_stages),
    )
    if not table and not sensitivity:
        raise ValueError("--no-table leaves nothing to do: add --sensitivity")
    text = markdown_table(compare_precisions(request, say=console.print)) if table else ""
    if sensitivity:
        text += "\n" + sensitivity_markdown(stage_sensitivity(request, say=console.print))
    written = [name for name, made in (("precision.json", table), ("sensitivity.json", sensitivity)) if made]
    markdown = "precision.md" if table else "sensitivity.md"
    with atomic_path(folder / markdown) as tmp:
        tmp.write_text(text)
    console.print(text)
    console.print(f"{', '.join(written)} and {markdown} in {folder}/")


def _calibration_args(
    data: Path | None, degradation: str | None, sigma: float | None, folder: Path | None, count: int
) -> tuple[str, ...]:
    """The options that chose the calibration crops, for the command a table records."""
    given = {"--data": data, "--degradation": degradation, "--sigma": sigma, "--calibration": folder}
    return (
        *(a for name, value in given.items() if value is not None for a in (name, str(value))),
        "--calibration-images",
        str(count),
    )


def _names(text: str | None) -> tuple[str, ...]:
    """A comma-separated option as its names."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _calibration(
    folder: Path,
    images: Path | None,
    data: Path | None,
    degradation: str | None,
    sigma: float | None,
    height: int,
    width: int,
    count: int,
) -> list:
    """Calibration inputs: degraded crops of the task's training split (recorded in the output folder's data.json),
    or the centre crops of a folder of degraded images the user names."""
    import torch

    if images is not None:
        if data is not None or degradation is not None:
            raise ValueError("--calibration names the images to calibrate on: leave out --data / --degradation")
        from edgeens.data.bundled import calibration_crops

        return calibration_crops(images, height, width, count)
    from edgeens.cli.options import open_task_here

    task = open_task_here(folder, data, None, None, degradation, sigma, min_side=max(height, width))
    console.print(f"calibrating on {count} training crops of {task.describe()}")
    return [torch.from_numpy(crop) for crop in task.calibration_inputs(height, width, count)]


def _space_teacher(preset: str | None, teacher_path: Path | None, need: str):
    """The teacher whose space is built or timed (a preset's seeded random weights, or a checkpoint) and the
    space's name: the preset, or the checkpoint's file name (the stage-program folder's and the table's)."""
    from edgeens.models import Restormer, untrained_model

    if (preset is None) == (teacher_path is None):
        raise ValueError(need)
    if preset is not None:
        return untrained_model("restormer", preset), preset
    return Restormer.from_checkpoint(teacher_path), Path(teacher_path).stem


@command(PIPELINE)
def profile(
    device: str = typer.Option("host", help="host (this machine), or a Qualcomm AI Hub device or chipset name."),
    preset: str = typer.Option(None, help="Space of a preset teacher (tiny, paper), random weights: latency only."),
    teacher_path: Path = typer.Option(None, "--teacher", help="Teacher checkpoint whose space is profiled."),
    pool: Path = typer.Option(None, help="Block pool: time the distilled surrogates (weights do not change latency)."),
    families: str = typer.Option(None, help="Surrogate families without a pool (default M,S,G): e.g. M or M,L,S,G."),
    size: Size = "256",
    runtime: str = typer.Option("executorch", help="Host runtime: executorch (XNNPACK) or onnxruntime."),
    threads: Threads = 1,
    jobs: Jobs = 1,
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
    compute_unit: str = typer.Option("cpu", help="Where AI Hub runs the programs: cpu (the paper's), gpu or npu."),
    max_jobs: int = typer.Option(None, min=0, help="Refuse to submit more than this many new AI Hub jobs."),
    quantize: str = typer.Option(
        "none",
        help="Precision of the timed programs: none (float), w8a8 (ExecuTorch, ONNX Runtime) or w8a16 (ONNX "
        "Runtime); each stage calibrated on the teacher's features for degraded training crops (--data/--degradation).",
    ),
    scope: QuantizeScope = "conv",
    data: DataFolder = None,
    degradation: Degradation = None,
    sigma: Sigma = None,
    calibration: CalibrationFolder = None,
    calibration_images: CalibrationImages = 16,
) -> None:
    """Measure the latency of every (stage, choice) of a search space and of the fixed part: a latency table for
    the search's calibrated penalty. `--validate N` checks the table against N whole architectures; `--quantize`
    times the programs in that precision (the table a search for an int8 deployment needs)."""
    process_prologue(threads)
    from edgeens.compile.artifact import parse_size
    from edgeens.compile.quantize import Quantization, parse_precision
    from edgeens.files import writable_folder
    from edgeens.profile.request import TimingPolicy
    from edgeens.profile.step import ProfileRequest, check_repeatability, profile_step, validate_table
    from edgeens.rundir import stage_programs_folder
    from edgeens.train.pool import space_for

    height, width = parse_size(size)
    need = "name the space to profile: --preset tiny|paper, or --teacher CHECKPOINT"
    teacher_model, base_name = _space_teacher(preset, teacher_path, need)
    surrogates, space = space_for(teacher_model, pool, families)
    if device != "host" and repeat_check:
        raise ValueError("--repeat-check measures on this machine: use it with --device host")
    if validate or repeat_check:
        writable_folder(reports, "--reports")  # before the measurements, not after
    policy = TimingPolicy(
        min_repeats=min_repeats, max_repeats=max(min_repeats, max_repeats), min_samples=min_samples, rounds=rounds
    )
    folder = programs or stage_programs_folder("exports", base_name, height, width)
    quantization = Quantization(parse_precision(quantize), scope)
    quantization.check_runtime(runtime)  # before the calibration crops are made
    if quantization.quantized:
        images = _calibration(folder, calibration, data, degradation, sigma, height, width, calibration_images)
        quantization = Quantization(quantization.precision, scope, tuple(images))
    request = ProfileRequest(
        teacher_model,
        space,
        base_name + space.name_suffix,  # one table per family set, one programs folder per teacher and size
        (height, width),
        folder,
        out,
        ("--preset", preset) if preset else ("--teacher", str(teacher_path)),
        surrogates,
        pool,
        device,
        runtime,
        threads,
        policy,
        jobs,
        remeasure=remeasure,
        validate=validate,
        validate_programs=validate_programs,
        validate_spacing=validate_spacing,
        hub_runtime=hub_runtime,
        hub_poll=hub_poll,
        compute_unit=compute_unit,
        max_jobs=max_jobs,
        quantization=quantization,
        calibration_args=_calibration_args(data, degradation, sigma, calibration, calibration_images),
    )
    request.check()  # before minutes of calibrating or lowering
    with console.status("profiling on Qualcomm AI Hub" if device != "host" else "profiling") as status:
        result = profile_step(request, progress=status.update, say=console.print)
    if result.reused:
        console.print(f"reusing {result.path} (measured {result.table.date}; --remeasure to measure again)")
        if result.note:
            console.print(f"[yellow]note:[/yellow] {result.note}")
    console.print(views.latency_view(result.table, result.path))
    if result.table.placement:
        placed = result.table.placement
        units = ", ".join(f"{unit} {count}" for unit, count in sorted(placed["units"].items()))
        console.print(
            f"placement ({result.table.compute_unit} asked): {placed['layers']} layers ({units}); "
            f"{placed['cpu_fallback_share']:.0%} fell back to the CPU"
        )
    if repeat_check:
        with console.status("measuring again") as status:
            comparison, target = check_repeatability(request, result, reports, progress=status.update)
        console.print(
            f"repeat run: {comparison['agreeing']}/{comparison['entries']} medians within "
            f"{comparison['tolerance']:.0%}; largest difference {comparison['largest_difference']:.1%} "
            f"({comparison['largest_key']}); flagged noisy: {', '.join(comparison['flagged']) or 'none'} -> {target}"
        )
    if validate:
        with console.status("validating") as status:
            report = validate_table(request, result, reports, progress=status.update, say=console.print)
        for line in views.validation_lines(report):
            console.print(line)
        where = f"{reports}/validation--{result.path.stem}.{{json,png}}"
        console.print(f"validation of {report['architectures']} architectures: {where}")


@command(MEASURE)
def sweep(
    sizes: str = typer.Option("64,128,256,384,512", help="Input sides to measure, comma-separated."),
    width: int = typer.Option(48, min=8, help="Channels of each block (48: the paper's level 1)."),
    threads: Threads = 1,
    memory_limit: float = typer.Option(4.0, help="Skip sizes whose attention matrix exceeds this many GiB."),
    reports: Path = typer.Option(Path("reports"), help="Folder for the plot and the table."),
) -> None:
    """Latency, FLOPs and peak memory of one Restormer, one MambaIR and one plain self-attention block across
    input sizes, measured in ExecuTorch on this machine (the paper's Figure 1)."""
    process_prologue(threads)
    from edgeens.profile.sweep import sweep_step

    try:
        sides = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, got {sizes!r}") from None
    with console.status("sweeping") as status:
        rows = sweep_step(sides, width, threads, memory_limit, reports, progress=status.update)
    console.print(views.sweep_view(rows, width, threads))
    console.print(f"written: {reports}/resolution-sweep--host.{{json,png}}")
