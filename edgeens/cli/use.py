"""`edgeens inspect`, `restore`, `serve`, `bench` and `run`: using models, and the whole pipeline (edgeens.run)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import typer
from rich.status import Status
from rich.table import Table

import edgeens.cli.views as views
from edgeens.cli.options import (
    PIPELINE,
    USE,
    DataFolder,
    Degradation,
    DeprecatedDevice,
    Precision,
    Sigma,
    SplitSeed,
    TestData,
    Threads,
    TorchDevice,
    ValData,
    chosen_torch_device,
    command,
    console,
    side_check,
    workers_check,
)
from edgeens.rundir import STEPS
from edgeens.workers import process_prologue


@command(USE)
def inspect(
    checkpoint: Path = typer.Argument(..., help="A Restormer or MambaIRUNet checkpoint (.pth or .safetensors)."),
) -> None:
    """Load a checkpoint strictly and print the configuration read off its weights."""
    from edgeens.models import load_model

    model = load_model(checkpoint)
    console.print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters")
    for key, value in model.config.to_dict().items():
        console.print(f"  {key} = {value!r}")


@command(USE)
def restore(
    inputs: list[Path] = typer.Argument(..., help="Images (PNG, JPEG, TIFF) or folders of them."),
    model: Path = typer.Option(..., help="Checkpoint (Restormer, MambaIRUNet, hybrid), .pte or .onnx."),
    out: Path = typer.Option(Path("restored"), help="Folder for the restored images (same names and formats)."),
    tile: int = typer.Option(
        512,
        min=0,
        callback=side_check("--tile", allow_zero=True),
        help="Tile side for eager models (0: whole image); programs use theirs.",
    ),
    overlap: int = typer.Option(32, min=0, help="Pixels shared by neighbouring tiles (blended linearly)."),
    threads: Threads = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
) -> None:
    """Restore photos of any size with a checkpoint, an ExecuTorch program or an ONNX file, in blended tiles."""
    process_prologue(threads)
    import resource

    from edgeens.devices import resolve_device
    from edgeens.files import writable_folder
    from edgeens.restore import list_inputs, load_restorer, output_paths, restore_files

    # before any file is read: a device this machine lacks is the first thing said
    place = resolve_device(chosen_torch_device(device, old_device))
    files = list_inputs(inputs, say=console.print)
    targets = output_paths(files, out)
    restorer = load_restorer(model, threads, place)
    writable_folder(out)
    size = restorer.size or ((tile, tile) if tile else None)
    tiles = f"{size[0]}x{size[1]}" if size else "whole"
    view = Table(title=f"{restorer.name}, {threads} thread(s)")
    for column in ("image", "size", "tiles of", "seconds", "written"):
        view.add_column(column)
    written: list[Path] = []
    try:
        with console.status("restoring") as status:
            for done in restore_files(restorer, files, targets, tile, overlap, progress=_tiles_shown(status)):
                written.append(done.target)
                w, h = done.size
                view.add_row(done.source.name, f"{w}x{h}", tiles, f"{done.seconds:.2f}", str(done.target))
    except KeyboardInterrupt:
        listed = f": {', '.join(map(str, written))}" if written else ""
        # soft_wrap: paths stay whole for a reader (and a script) to copy
        console.print(f"interrupted: {len(written)} of {len(files)} photo(s) written{listed}", soft_wrap=True)
        console.print(f"not restored: {', '.join(map(str, files[len(written) :]))}", soft_wrap=True)
        raise typer.Exit(code=130) from None
    console.print(view)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    console.print(f"peak memory of this process: {peak:.2f} GiB")


def _tiles_shown(status: Status) -> Callable[[str], None]:
    """Tile progress on the spinner; where there is no terminal (a log, a pipe) a line every tenth of a photo's
    tiles, so a long restore is never silent."""
    last: dict[str, int] = {}

    def show(text: str) -> None:
        status.update(text)
        found = re.search(r"^(.*): tile (\d+)/(\d+)$", text)
        if console.is_terminal or not found:
            return
        name, done, total = found.group(1), int(found.group(2)), int(found.group(3))
        tenth = done * 10 // total
        if tenth > last.get(name, -1) or done == 1:
            last[name] = tenth
            console.print(text, soft_wrap=True)

    return show


@command(USE)
def serve(
    model: Path = typer.Option(..., help="The ONNX export (edgeens compile --target onnx) the page restores with."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; another than 127.0.0.1 only if you name it."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port (0: any free one)."),
) -> None:
    """The browser demo: a page that restores a photo from the camera or a file with MODEL, in the browser, in
    tiles as `edgeens restore` does. Only the page, its script, the model and the runtime are served."""
    from edgeens.serve import demo_server

    server = demo_server(model, host, port)
    where = f"http://{host}:{server.server_address[1]}/"
    console.print(f"serving {model.name} at {where} (Ctrl-C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"listening on {host}: anyone who reaches this machine can load the page and the model")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()


@command(USE)
def bench(
    model: list[Path] = typer.Option(None, help="A model to compare (repeat): checkpoint, .pte or .onnx."),
    baseline: list[str] = typer.Option(
        None, help="A classical denoiser beside the models (repeat): nlm, wavelet or tv (scikit-image)."
    ),
    data: Path = typer.Option(None, help="Paired folder (any layout edgeens reads); default: --split's photos."),
    split: str = typer.Option(
        "test", help="Without --data: photo catalogue split (test, val, train; make photos installs it) or bundled."
    ),
    degradation: Degradation = None,
    sigma: Sigma = None,
    out: Path = typer.Option(Path("bench"), help="Folder for bench.csv and bench.md."),
    tile: int = typer.Option(
        512, min=0, callback=side_check("--tile", allow_zero=True), help="Tile side for eager models (0: whole image)."
    ),
    overlap: int = typer.Option(32, min=0, help="Pixels shared by neighbouring tiles."),
    threads: Threads = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
) -> None:
    """Compare models and classical denoisers on the same images: PSNR / SSIM and latency per image."""
    process_prologue(threads)

    from edgeens.classical import classical_restorer
    from edgeens.devices import resolve_device
    from edgeens.files import writable_folder
    from edgeens.harness import bench_pairs, benchmark_models, summarize, write_results
    from edgeens.restore import load_restorer

    if not model and not baseline:
        raise ValueError("nothing to compare: give at least one --model or --baseline")
    place = resolve_device(chosen_torch_device(device, old_device))
    writable_folder(out)  # before the benchmark, not after
    pairs, count, note = bench_pairs(data, split, degradation, sigma)
    note += f", {threads} thread(s), {place}."
    restorers = [load_restorer(path, threads, place) for path in model or []]
    restorers += [classical_restorer(name, 25.0 if sigma is None else sigma) for name in baseline or []]
    with console.status("benchmarking") as status:
        rows = benchmark_models(restorers, pairs, tile, overlap, progress=status.update, count=count)
    csv_path, md_path = write_results(rows, out, note)
    console.print(views.bench_view(summarize(rows), note))
    console.print(f"written: {csv_path}, {md_path}")


@command(PIPELINE, "run")
def run_command(
    out: Path = typer.Option(Path("runs/demo"), help="Run folder (a re-run continues it)."),
    preset: str = typer.Option("tiny", help="Teacher size / search space: tiny or paper."),
    teacher_path: Path = typer.Option(None, "--teacher", help="Adopt this Restormer checkpoint as the teacher."),
    data: DataFolder = None,
    val_data: ValData = None,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    degradation: Degradation = None,
    sigma: Sigma = None,
    device: str = typer.Option("host", help="host, or a Qualcomm AI Hub device for the latency table."),
    compute_unit: str = typer.Option("cpu", help="With an AI Hub device: where it runs the programs (cpu, gpu, npu)."),
    size: int = typer.Option(256, help="Deployment input size (square; a multiple of 8)."),
    penalty: str = typer.Option("calibrated", help="calibrated (the latency table) or heuristic (the paper's)."),
    families: str = typer.Option(None, help="Surrogate families (default M,S,G; M alone: the paper's search)."),
    speedup: float = typer.Option(
        None,
        min=0,
        help="Latency budget: search within teacher/SPEEDUP (default 2 with the calibrated penalty; 0: no bound, the "
        "knee of the whole front).",
    ),
    teacher_iterations: int = typer.Option(1500, min=1, help="Teacher training iterations (if one is trained)."),
    distill_steps: int = typer.Option(150, min=1, help="Distillation steps per surrogate."),
    distill_plateau: int = typer.Option(
        0,
        min=0,
        help="Stop each surrogate once its held-out error has not improved for this many checks of 100 steps "
        "(--distill-steps is then the ceiling); 0: every surrogate trains all --distill-steps.",
    ),
    budget: int = typer.Option(40, min=2, help="Search evaluations."),
    top_k: int = typer.Option(3, min=1, help="Candidates near the knee to fine-tune."),
    finetune_iterations: int = typer.Option(100, min=1, help="Fine-tuning iterations per model."),
    finetune_patch: int = typer.Option(
        64, callback=side_check("--finetune-patch"), help="Largest fine-tuning patch (Restormer's progression)."
    ),
    finetune_min_patch: int = typer.Option(
        0,
        callback=side_check("--finetune-min-patch", allow_zero=True),
        help="Smallest fine-tuning patch (0: the progression scaled to --finetune-patch).",
    ),
    finetune_batch_pixels: int = typer.Option(
        0, min=0, help="Pixels per fine-tuning mini-batch at every patch size (0: Restormer's batches 8..1)."
    ),
    baselines: str = typer.Option(
        "all",
        help="The alternatives the comparison trains: all, none, or some of teacher-finetuned, mambair-only, "
        "random, fifty-fifty, random-init (a re-run with more adds them).",
    ),
    profiles: Path = typer.Option(
        Path("profiles"),
        help="Folder of committed latency tables: read when one fits, written only with --save-profiles.",
    ),
    save_profiles: bool = typer.Option(False, help="Also write a table the run measures into --profiles."),
    reports: Path = typer.Option(
        None, help="Also copy the report to <reports>/<run folder name>/ (it is always in <run>/report/)."
    ),
    steps: str = typer.Option(",".join(STEPS), help="Comma-separated steps to run (default: all)."),
    threads: Threads = 1,
    torch_device: str = typer.Option(
        "auto", help="Where training, distillation, search evaluation and scoring run: auto, cpu, cuda or cuda:N."
    ),
    precision: Precision = "auto",
    jobs: int = typer.Option(
        os.cpu_count() or 1,
        callback=workers_check("--jobs"),
        help="Worker processes (one thread each) for distillation, training, lowering.",
    ),
    quantize: str = typer.Option(
        "none",
        help="Deploy in this precision: none (float) or w8a8 (int8, XNNPACK). The latency table, the search and the "
        "compiled hybrid are in it; the comparison adds the teacher's and the hybrid's int8 rows.",
    ),
    calibration_images: int = typer.Option(16, min=1, help="Degraded training crops that calibrate --quantize."),
) -> None:
    """The whole pipeline on one run folder: teacher -> distill -> profile -> search -> fine-tune -> compile ->
    compare -> report. Every step is skipped when its outputs exist, so a re-run continues an interrupted one."""
    process_prologue(threads)

    from edgeens.compare import parse_baselines
    from edgeens.compile.quantize import parse_precision
    from edgeens.run import RunConfig, run_pipeline
    from edgeens.train.finetune import FinetunePatches

    config = RunConfig(
        run_dir=out,
        preset=preset,
        data=data,
        val_data=val_data,
        test_data=test_data,
        split_seed=split_seed,
        degradation=degradation,
        sigma=sigma,
        teacher=teacher_path,
        teacher_iterations=teacher_iterations,
        distill_steps=distill_steps,
        distill_plateau=distill_plateau,
        device=device,
        compute_unit=compute_unit,
        size=size,
        profiles=profiles,
        save_profiles=save_profiles,
        penalty=penalty,
        **({"families": families} if families else {}),
        speedup=speedup,
        budget=budget,
        top_k=top_k,
        finetune_iterations=finetune_iterations,
        finetune_patches=FinetunePatches(finetune_patch, finetune_min_patch, finetune_batch_pixels),
        baselines=parse_baselines(baselines),
        reports=reports,
        jobs=jobs,
        torch_device=torch_device,
        precision=precision,
        quantize=parse_precision(quantize),
        calibration_images=calibration_images,
        only_steps=tuple(s.strip() for s in steps.split(",") if s.strip()),
    )
    try:
        summary = run_pipeline(config, say=console.print)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: run `edgeens run --out {out}` again to continue where it stopped")
        raise typer.Exit(code=130) from None
    console.print(views.run_view(summary, out))
