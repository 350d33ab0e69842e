"""`edgeens search`: ENS and the comparison of search methods (edgeens.search)."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import typer

import edgeens.cli.views as views
from edgeens.cli.options import (
    PIPELINE,
    DataFolder,
    Degradation,
    DeprecatedDevice,
    Jobs,
    Sigma,
    Size,
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
)
from edgeens.workers import process_prologue

if TYPE_CHECKING:
    from edgeens.data.task import TaskData


@command(PIPELINE)
def search(
    teacher_path: TeacherFile = Path("runs/default/teacher/teacher.safetensors"),
    pool: Path = typer.Option(Path("runs/default/pool"), help="Block pool of `edgeens distill` for this teacher."),
    table: Path = typer.Option(None, help="Latency table of `edgeens profile` (the calibrated penalty)."),
    penalty: str = typer.Option("calibrated", help="calibrated (measured latency, needs --table) or heuristic."),
    families: str = typer.Option(None, help="Search only these of the pool's families (M: the paper's search)."),
    size: Size = "256",
    data: DataFolder = None,
    val_data: ValData = None,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    degradation: Degradation = None,
    sigma: Sigma = None,
    budget: int = typer.Option(60, min=1, help="Architectures to evaluate, the initial design included."),
    initial: int = typer.Option(16, min=1, help="Uniform random architectures before the first model fit."),
    batch: int = typer.Option(4, min=1, help="Architectures proposed per iteration (q)."),
    seed: int = typer.Option(0, min=0, help="Seed of the initial design and the MC samplers."),
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
    threads: Threads = 1,
    jobs: Jobs = 1,
    device: TorchDevice = "auto",
    old_device: DeprecatedDevice = None,
    force: bool = typer.Option(False, help="Discard the folder's trials and start over."),
) -> None:
    """ENS: search which stages to swap, against validation PSNR and a penalty; writes the trial log, the front,
    its knee and the candidates for fine-tuning (`--compare`: ENS against the baselines, hypervolume curves)."""
    process_prologue(threads)

    from edgeens.compile.artifact import parse_size
    from edgeens.devices import resolve_device
    from edgeens.models import Restormer
    from edgeens.profile.table import LatencyTable, search_penalty
    from edgeens.report.search import plot_compare, plot_front
    from edgeens.search.ens import SearchSettings, TrialLog
    from edgeens.search.evaluate import WorkerPool
    from edgeens.search.step import SearchRequest, compare_search_methods, search_step
    from edgeens.train.pool import load_pool, pool_families_named

    place = resolve_device(chosen_torch_device(device, old_device))
    height, width = parse_size(size)
    settings = SearchSettings(
        budget=budget,
        initial=initial,
        batch=batch,
        seed=seed,
        encoding=encoding,
        top_k=top_k,
        max_drop=max_drop,
        max_penalty=max_penalty,
    )
    teacher_model = Restormer.from_checkpoint(teacher_path)
    surrogates = load_pool(pool, teacher_model)
    space = surrogates.space
    if families is not None:  # a subset of the pool's families, e.g. M for the paper's MambaIR-only search
        space = space.with_families(pool_families_named(space, families))
    settings.check(space.size)
    latency = LatencyTable.load(table) if table is not None and penalty == "calibrated" else None
    stage_costs, penalty_label, source = search_penalty(penalty, latency, space, height, width)
    task = open_task_here(out, data, val_data, test_data, degradation, sigma, split_seed)
    request = SearchRequest(
        teacher_model,
        surrogates,
        pool,
        space,
        stage_costs,
        source,
        (height, width),
        task,
        settings,
        out,
        force,
        place,
    )
    if compare:
        # The command that reproduces it, from the resolved options (sys.argv is not ours under a runner).
        penalty_args = ["--table", str(table)] if penalty == "calibrated" else ["--penalty", "heuristic"]
        command = shlex.join(
            ["edgeens", "search", "--compare", "--teacher", str(teacher_path), "--pool", str(pool), *penalty_args]
            + ["--families", ",".join(f.letter for f in space.families)]
            + ["--size", f"{height}x{width}", *_data_args(data, val_data, test_data, split_seed, task)]
            + ["--budget", str(budget), "--initial", str(initial), "--batch", str(batch), "--seeds", str(seeds)]
            + (["--exhaustive"] if exhaustive else [])
            + ["--out", str(out)]
        )
        with console.status("comparing search methods") as status:
            result = compare_search_methods(request, seeds, exhaustive, command, progress=status.update)
        plot_compare(result, out / "compare.png")
        console.print(views.methods_view(result, budget, seeds, exhaustive))
        console.print(f"written: {out}/compare.json, {out}/compare.png")
        return
    with console.status("searching") as status, contextlib.ExitStack() as stack:
        workers = None
        if jobs > 1:
            workers = stack.enter_context(WorkerPool(teacher_path, pool, task, jobs, place))
        searched = search_step(request, progress=status.update, batch_evaluate=workers)
    front = searched.front
    plot_front(TrialLog(out / "trials.jsonl").records, front, out / "pareto.png", penalty_label)
    console.print(views.front_view(front, searched.teacher_psnr, penalty_label))
    console.print(f"{front['knee_method']}")
    console.print(f"candidates for fine-tuning: {', '.join(c['architecture'] for c in front['candidates'])}")
    console.print(f"written: {out}/trials.jsonl, {out}/front.json, {out}/pareto.png")


def _data_args(
    data: Path | None, val_data: Path | None, test_data: Path | None, split_seed: int, task: TaskData
) -> list[str]:
    """The data options that name `task` again, for the command a comparison records."""
    if task.synthetic:
        return ["--degradation", task.degradation, "--sigma", f"{task.sigma:g}"]
    given = (("--data", data), ("--val-data", val_data), ("--test-data", test_data))
    return [arg for option, path in given if path is not None for arg in (option, str(path))] + [
        "--split-seed",
        str(split_seed),
    ]
