"""The main job: from photos to a profiled hybrid, in one run folder.

teacher -> distill -> profile -> search -> fine-tune -> compile (+ verify) -> compare -> report. Each step writes
its outputs under the run folder and is skipped when they exist and are complete, so a run that was interrupted
(Ctrl-C, a kill, a crash) continues where it stopped; the long steps also resume inside themselves (teacher and
fine-tuning checkpoints, the distillation pool, the search's trial log).

The task's data is decided once, at the entrance (edgeens.data.task.open_task: `data.json` in the run folder), and
handed to every step. With `--data` it is the user's paired folders and their split; with no options it runs the
embedded default: the tiny preset, Gaussian denoising (sigma 25) of the photo
catalogue (`make photos`: trained on its train split, searched and selected on crops of its val split, compared on
its whole test photos), starting from a teacher that edgeens trained itself (`edgeens/assets/`, with the command
that made it).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich import get_console
from rich.progress import BarColumn, Progress, TextColumn

from edgeens.allocator import release_free_memory
from edgeens.compare import BASELINES, CompareRequest, compare_rows_labels, compare_step, save_crops
from edgeens.data.task import DataRequest, TaskData, open_task
from edgeens.errors import EdgeensError
from edgeens.files import DamagedFileError, folder_lock, now, read_json, write_json
from edgeens.models.restormer import Restormer, RestormerConfig
from edgeens.models.space import DEFAULT_FAMILIES, PRESETS, SearchSpace, format_architecture, parse_families
from edgeens.profile.table import searched_table
from edgeens.rundir import STEPS, RunFolder
from edgeens.train.finetune import FinetunePatches

ASSETS = Path(__file__).parent / "assets"
# The teachers edgeens trained itself on the photo catalogue (scripts/package_teacher.py), by the catalogue's task:
# (degradation, sigma), sigma only for noise. `edgeens run` with no --teacher adopts the one of its task.
EMBEDDED_TEACHERS = {
    ("gaussian_noise", 25.0): ASSETS / "teacher-tiny-gaussian25.safetensors",
    ("motion_blur", None): ASSETS / "teacher-tiny-motion-blur.safetensors",
    ("rain_streaks", None): ASSETS / "teacher-tiny-rain-streaks.safetensors",
}

# The latency bound of a run that names none (calibrated penalty): without one, candidates are picked by validation
# PSNR alone and the most teacher-like wins (make demo on 2026-12-05: 0.95x measured). reports/tiny-2x ran at 2x.
DEFAULT_SPEEDUP = 2.0


def embedded_teacher(preset: str, task: TaskData) -> Path | None:
    """The embedded teacher's path for this preset and task (whether or not its file exists yet), else None."""
    if preset != "tiny" or task.source != "catalogue":
        return None
    sigma = task.sigma if task.degradation == "gaussian_noise" else None
    return EMBEDDED_TEACHERS.get((task.degradation, sigma))


@dataclass(frozen=True)
class RunConfig:
    """What one run does. The defaults are the embedded demo; every budget is a flag of `edgeens run`."""

    run_dir: Path = Path("runs/demo")
    preset: str = "tiny"
    data: Path | None = None  # the user's paired folder (any layout edgeens.data.paired reads)
    val_data: Path | None = None
    test_data: Path | None = None
    split_seed: int = 0  # the seeded train / val / test split of `data` where it has none of its own
    degradation: str | None = None  # without data: the catalogue's synthetic degradation (None: gaussian_noise)
    sigma: float | None = None  # None: 25
    teacher: Path | None = None  # a Restormer checkpoint to adopt instead of the embedded or a trained one
    teacher_iterations: int = 1500
    families: str = DEFAULT_FAMILIES
    distill_steps: int = 150
    distill_plateau: int = 0  # > 0: each surrogate stops on its held-out plateau (distill_steps is the ceiling)
    distill_patch: int = 32
    device: str = "host"
    compute_unit: str = "cpu"  # with an AI Hub device: where its programs run (cpu, gpu, npu)
    size: int = 256
    profiles: Path = Path("profiles")
    penalty: str = "calibrated"
    budget: int = 40
    initial: int = 16
    batch: int = 4
    top_k: int = 3
    # A latency budget: the search keeps to teacher / speedup. None: DEFAULT_SPEEDUP with the calibrated penalty, none
    # with the heuristic one; 0: no bound (the front's knee, which may be barely faster than the teacher).
    speedup: float | None = None
    finetune_iterations: int = 100  # every trained model of the run gets the same; sized for make demo
    finetune_patches: FinetunePatches = FinetunePatches()  # and the same patches
    baselines: tuple[str, ...] = tuple(BASELINES)  # the alternatives the compare step trains and scores
    seed: int = 0
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)  # worker processes of one thread each
    reports: Path | None = None  # also copy the report to <reports>/<run folder name>/ (the run keeps its own)
    save_profiles: bool = False  # also write a table the run measured into `profiles` (else it stays in the run)
    only_steps: tuple[str, ...] = field(default=STEPS)
    torch_device: str = "auto"  # where training, distillation, search evaluation and scoring run (--torch-device)
    precision: str = "auto"  # the training steps' forward pass (edgeens.devices.resolve_precision)
    # The deployed program's precision (edgeens.compile.quantize): the latency table, the search's penalty and the
    # compiled ENS hybrid are in it; the comparison adds the teacher's and the hybrid's quantized rows.
    quantize: str = "fp32"
    calibration_images: int = 16  # degraded training crops that calibrate a quantized deployment

    @property
    def latency_bound(self) -> float | None:
        """The speed-up the search must keep to (see `speedup`), or None for the knee of the whole front."""
        if self.speedup is not None:
            return self.speedup or None
        return DEFAULT_SPEEDUP if self.penalty == "calibrated" else None

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def placement(self) -> tuple[torch.device, str]:
        """The torch device and the training precision this run's steps use."""
        from edgeens.devices import resolve_device, resolve_precision

        device = resolve_device(self.torch_device)
        return device, resolve_precision(self.precision, device)

    def data_request(self) -> DataRequest:
        """The data as asked for: the largest crop the steps draw bounds the training images' size."""
        teacher_patch = 64 if self.teacher is None else 0  # the run's teacher trains on 64-px crops at most
        largest = max(teacher_patch, self.distill_patch, self.finetune_patches.max_patch)
        return DataRequest(
            self.data, self.val_data, self.test_data, self.degradation, self.sigma, self.split_seed, min_side=largest
        )

    def check(self) -> None:
        self.data_request().check()
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        from edgeens.compile.artifact import parse_size

        parse_size(self.size)  # positive, a multiple of 8, not absurd: before any step runs
        parse_families(self.families)
        if unknown := sorted(set(self.baselines) - set(BASELINES)):
            raise ValueError(f"unknown baselines {', '.join(unknown)}; choose from: {', '.join(BASELINES)}")
        if self.speedup and (self.speedup <= 1 or self.penalty != "calibrated"):
            raise ValueError(
                "--speedup needs a value above 1 (0: no bound) and the calibrated penalty (a measured latency table)"
            )
        if self.budget < self.initial:  # in the words of `edgeens run`, which has no --initial: before any step
            raise ValueError(
                f"--budget {self.budget} is below the {self.initial} random architectures every search starts with; "
                f"give --budget {self.initial} or more"
            )
        if self.penalty not in ("calibrated", "heuristic"):
            raise ValueError(f"--penalty must be calibrated or heuristic, not {self.penalty!r}")
        self.placement()  # a device or precision this machine lacks: refused before any step runs
        from edgeens.compile.quantize import Quantization

        Quantization(self.quantize).check_runtime("executorch")
        if self.quantize != "fp32" and self.device != "host":
            raise ValueError(
                f"--quantize {self.quantize} runs on this machine's tables (--device host): for {self.device}, "
                f"compile the run's hybrid with edgeens compile --target aihub --quantize {self.quantize}"
            )
        unknown = set(self.only_steps) - set(STEPS)
        if unknown:
            raise ValueError(f"unknown step(s) {', '.join(sorted(unknown))}; the steps are {', '.join(STEPS)}")


Say = Callable[[str], None]


def run_pipeline(config: RunConfig, say: Say = print) -> dict[str, Any]:
    """Run (or continue) every step; returns run.json's content (per-step status and seconds)."""
    config.check()
    with folder_lock(config.run_dir, "edgeens run"):
        return _run_steps(config, say)


class StepOrderError(EdgeensError):
    """A step asked for the outputs of one that has not run in this folder."""


class RunState:
    """The outputs of the steps run so far in one run, by step name. Asking for a step that has not run names it
    (with --steps a user can skip a step whose outputs a later one needs)."""

    def __init__(self, run_dir: Path, task: TaskData) -> None:
        self.run_dir = run_dir
        self.task = task  # where every step's images come from
        self.current = ""  # the step running now, for the message
        self._outputs: dict[str, Any] = {}

    def __setitem__(self, step: str, outputs: Any) -> None:
        self._outputs[step] = outputs

    def __getitem__(self, step: str) -> Any:
        if step not in self._outputs:
            raise StepOrderError(
                f"step {self.current} needs the outputs of step {step}, which has not run in {self.run_dir}; run it "
                "first (add it to --steps, or leave --steps out)"
            )
        return self._outputs[step]


def _run_steps(config: RunConfig, say: Say) -> dict[str, Any]:
    run = config.run_dir
    summary_path = run / "run.json"
    fix = "delete it: each step's own outputs say what is done, and the next run writes it again"
    summary = read_json(summary_path, fix) if summary_path.is_file() else {"steps": {}}
    summary["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    summary["config"]["latency_bound"] = config.latency_bound
    if config.latency_bound and config.device == "host":
        _check_speedup_early(config, say)
    _check_recorded_budgets(config)  # before any step writes: a refused re-run changes nothing
    task = open_task(run, config.data_request(), say)  # the folder's data.json: other data is refused here
    summary["data"] = task.describe()
    say(f"data: {task.describe()}")
    state = RunState(run, task)
    for name, step in STEP_FUNCTIONS:
        selected = name in config.only_steps
        if not selected and name not in summary["steps"]:
            continue  # not asked for and never run: a later step that needs it says so
        start = time.perf_counter()
        state.current = name
        # A step that is not selected but finished before only loads its outputs (they exist), for later steps.
        state[name], reused = step(config, state, say)
        release_free_memory()  # a step's peak (a training's image cache, a search's features) is not the next one's
        if not selected:
            continue
        seconds = time.perf_counter() - start
        summary["steps"][name] = {"reused": reused, "seconds": round(seconds, 1), "finished": now()}
        write_json(summary_path, summary)
        say(f"{name}: {'reused' if reused else 'done'} ({seconds:.0f} s)")
    return summary


# --- the steps: each returns (what later steps need, whether its outputs were already there) -----------------------


def _teacher(config: RunConfig, state: RunState, say: Say) -> tuple[Restormer, bool]:
    from edgeens.data.transforms import ProgressiveSchedule
    from edgeens.train.loop import TrainingRecipe
    from edgeens.train.teacher import TeacherRequest, teacher_step

    folder, path = config.folder.teacher, config.folder.teacher_weights
    if config.folder.teacher_done():
        return Restormer.from_checkpoint(path), True
    task = state.task
    embedded = embedded_teacher(config.preset, task)
    source = config.teacher or (embedded if embedded is not None and embedded.is_file() else None)
    if source is not None:
        say(f"teacher: adopting {source}")
    else:
        say(f"teacher: training the {config.preset} preset for {config.teacher_iterations} iterations")
    device, precision = config.placement()
    schedule = ProgressiveSchedule().scaled(64)
    recipe = TrainingRecipe(iterations=config.teacher_iterations, schedule=schedule, precision=precision)
    request = TeacherRequest(folder, task, source, config.preset, recipe=recipe, device=device)
    teacher_step(request)
    return Restormer.from_checkpoint(path), False


def _distill(config: RunConfig, state: RunState, say: Say) -> tuple[dict, bool]:
    from edgeens.models.checkpoint import CheckpointError
    from edgeens.train.distill import DistillRequest, distill_step
    from edgeens.train.pool import load_pool

    teacher = state["teacher"]
    pool_dir = config.folder.pool
    space = SearchSpace(teacher.config, parse_families(config.families))
    manifest = pool_dir / "manifest.json"
    if manifest.is_file():
        try:
            pool = load_pool(pool_dir, teacher)
            if all((stage.name, token) in pool for stage, token in space.surrogates()):
                return pool, True
        except CheckpointError:  # a surrogate's file was deleted or damaged: distill_pool makes it again
            pass
    say(f"distill: {len(space.surrogates())} surrogates, {config.distill_steps} steps each")
    device, precision = config.placement()
    request = DistillRequest(
        teacher,
        config.run_dir,
        space.families,
        state.task,
        patch=config.distill_patch,
        steps=config.distill_steps,
        jobs=config.jobs,  # surrogates at a time, one process (one thread) each
        plateau_patience=config.distill_plateau,
        device=device,
        precision=precision,
    )
    distill_step(request)
    return load_pool(pool_dir, teacher), False


def _check_recorded_budgets(config: RunConfig) -> None:
    """Refuse a re-run whose budgets would be answered with a finished step's outputs made with other ones: a pool
    distilled for fewer steps, fine-tuned models (candidates, the comparison's rows) of another recipe (iterations,
    patches, warm-up). Only for the steps the run is asked to run: `--steps report` re-draws any folder."""
    from edgeens.train.finetune import finetune_recipe
    from edgeens.train.loop import RECIPE_FILE, check_same_recipe

    run = config.folder
    if "distill" in config.only_steps and (run.pool / "manifest.json").is_file():
        _check_distill_steps(run.pool, _planned_space(config)[1], config.distill_steps)
    recipe = finetune_recipe(config.finetune_iterations, config.finetune_patches, precision=config.placement()[1])
    for step, folder in (("finetune", run.finetune), ("compare", run.compare)):
        if step in config.only_steps and folder.is_dir():
            for trained in sorted(p.parent for p in folder.glob(f"*/{RECIPE_FILE}")):
                check_same_recipe(trained, recipe)
    if run.searched_table.is_file():  # the search's choice was made for programs of one precision
        from edgeens.profile.table import LatencyTable

        searched = LatencyTable.load(run.searched_table).precision
        if searched != config.quantize:
            raise ValueError(
                f"{config.run_dir} searched for {searched} programs; --quantize {config.quantize} needs its own "
                f"search: use a new --out folder (or give --quantize {searched.replace('fp32', 'none')})"
            )


def _planned_space(config: RunConfig) -> tuple[RestormerConfig, SearchSpace]:
    """The teacher configuration and search space the run will have, read before any step: the adopted checkpoint's,
    else the preset's (the embedded and the trained teachers are the preset)."""
    teacher_config = Restormer.from_checkpoint(config.teacher).config if config.teacher else PRESETS[config.preset]
    return teacher_config, SearchSpace(teacher_config, parse_families(config.families))


def _check_distill_steps(pool_dir: Path, space: SearchSpace, steps: int) -> None:
    """Refuse a pool whose surrogates were distilled for fewer steps than this run asks: reusing it would report a
    weaker pool under the new budget (make demo's budgets changed on 2026-12-06: 150 -> 2000 steps)."""
    from edgeens.train.pool import PoolError, read_manifest

    needed = {(stage.name, token) for stage, token in space.surrogates()}
    entries = (read_manifest(pool_dir) or {}).get("surrogates", {}).values()
    fewer = [
        e.get("steps", 0) for e in entries if (e.get("stage"), e.get("token")) in needed and e.get("steps", 0) < steps
    ]
    if fewer:
        raise PoolError(
            f"{pool_dir} holds surrogates distilled {min(fewer)} steps and this run asks --distill-steps {steps}: "
            f"use a new --out folder, give --distill-steps {min(fewer)}, or delete {pool_dir} to distill again"
        )


def _profile(config: RunConfig, state: RunState, say: Say) -> tuple[Any, bool]:
    """A latency table of the run's space: one the run measured before, else a committed one under `profiles`
    that fits, else measured now (stage programs and table inside the run folder; into `profiles` too only with
    --save-profiles)."""
    from edgeens.profile.step import ProfileRequest, profile_step

    run, space = config.folder, _space(config, state)
    base_name = _space_name(config)
    space_args = ("--preset", config.preset) if config.teacher is None else ("--teacher", str(config.teacher))
    request = ProfileRequest(
        state["teacher"],
        space,
        base_name + space.name_suffix,
        (config.size, config.size),
        run.stage_programs(base_name, config.size, config.size),
        run.profile,
        space_args,
        device=config.device,
        jobs=config.jobs,
        compute_unit=config.compute_unit,
        reuse_from=(run.profile, config.profiles),
        also_save=(config.profiles,) if config.save_profiles else (),
        quantization=_quantization(config, state),
        calibration_args=_calibration_args(config),
    )
    say(f"profile: {request.space_name} at {config.size}x{config.size}: a table that fits, else measured here")
    result = profile_step(request, say=say)
    if config.latency_bound:
        check_speedup(config.latency_bound, result.table, space)  # before the search spends its budget on it
    if result.reused:
        say(f"profile: reusing {result.path} (measured {result.table.date})")
        if result.note:
            say(f"profile: note: {result.note}")
    return result.table, result.reused


def _quantization(config: RunConfig, state: RunState) -> Any:
    """The run's deployed precision with its calibration: degraded crops of the training split at the run's size."""
    from edgeens.compile.quantize import Quantization

    if config.quantize == "fp32":
        return Quantization()
    crops = state.task.calibration_inputs(config.size, config.size, config.calibration_images)
    return Quantization(config.quantize, "conv", tuple(torch.from_numpy(crop) for crop in crops))


def _calibration_args(config: RunConfig) -> tuple[str, ...]:
    """Where a quantized run's calibration crops come from, as `edgeens profile` options."""
    given = {"--data": config.data, "--degradation": config.degradation, "--sigma": config.sigma}
    chosen = (a for name, value in given.items() if value is not None for a in (name, str(value)))
    return (*chosen, "--calibration-images", str(config.calibration_images))


def _space_name(config: RunConfig) -> str:
    """Tables and stage programs are named by space as `edgeens profile` names them: the preset, or an adopted
    teacher's file name."""
    return config.preset if config.teacher is None else Path(config.teacher).stem


def check_speedup(speedup: float, table: Any, space: SearchSpace) -> None:
    """Refuse a --speedup that no architecture of the space reaches by the table's prediction."""
    teacher_ms = table.predict_ms(space.teacher_only)
    fastest = tuple(min(s.choices, key=lambda c, s=s: table.stages[s.name][c].median_ms) for s in space.stages)
    fastest_ms = table.predict_ms(fastest)
    if teacher_ms / speedup < fastest_ms:
        reachable = math.floor(teacher_ms / fastest_ms * 100) / 100
        raise ValueError(
            f"--speedup {speedup:g} asks for {teacher_ms / speedup:.1f} ms, but the fastest architecture of this "
            f"space ({format_architecture(fastest)}) is predicted at {fastest_ms:.1f} ms against the teacher's "
            f"{teacher_ms:.1f} ms on {table.device}: give --speedup {reachable:g} or less (0: no bound, the knee)"
        )


def _check_speedup_early(config: RunConfig, say: Say) -> None:
    """--speedup against a latency table that already fits (the run's own, or a committed one), before any step;
    without one the check comes when the profile step has measured it, still before the search."""
    from edgeens.profile.table import LatencyTable, existing_table

    teacher_config, space = _planned_space(config)
    name = _space_name(config) + space.name_suffix
    wanted = LatencyTable.wanted(teacher_config, config.size, config.size, "executorch", 1, name, config.quantize)
    for place in (config.folder.profile, config.profiles):
        table = existing_table(place, wanted, space, say)
        if table is not None:
            check_speedup(config.latency_bound or 1.0, table, space)
            return


def _space(config: RunConfig, state: RunState) -> SearchSpace:
    """The run's space: the teacher's stages with the run's families (the pool may hold more)."""
    return SearchSpace(state["teacher"].config, parse_families(config.families))


def _search(config: RunConfig, state: RunState, say: Say) -> tuple[dict, bool]:
    from edgeens.profile.table import search_penalty
    from edgeens.search.ens import SearchSettings
    from edgeens.search.step import SearchRequest, search_step

    teacher, table = state["teacher"], state["profile"]
    space = _space(config, state)
    folder = config.folder.search
    front_path = folder / "front.json"
    if front_path.is_file():
        try:
            front = read_json(front_path, "")
            if front.get("evaluations", 0) >= config.budget and "candidates" in front:
                return front, True
        except DamagedFileError:  # derived from trials.jsonl, which the search below resumes and rewrites it from
            say(f"search: {front_path} is damaged; it is written again from the trial log")
    stage_costs, _, source = search_penalty(config.penalty, table, space, config.size, config.size)
    max_penalty = None
    if config.latency_bound:  # stage latencies that fit: the teacher's prediction / speed-up, less the fixed part
        max_penalty = table.predict_ms(space.teacher_only) / config.latency_bound - table.fixed.median_ms
    request = SearchRequest(
        teacher,
        state["distill"],
        config.folder.pool,
        space,
        stage_costs,
        source,
        (config.size, config.size),
        state.task,
        SearchSettings(
            budget=config.budget,
            initial=config.initial,
            batch=config.batch,
            seed=config.seed,
            top_k=config.top_k,
            max_penalty=max_penalty,
        ),
        folder,
        device=config.placement()[0],
    )
    say(f"search: ENS, {config.budget} evaluations, {config.penalty} penalty")
    # One bar, not a line per evaluation (the trial log, trials.jsonl, records each); disabled off a terminal,
    # where even a transient bar leaves an empty line in the log.
    columns = (TextColumn("search"), BarColumn(), TextColumn("{task.description}"))
    with Progress(*columns, transient=True, disable=not get_console().is_terminal) as bar:
        trials = folder / "trials.jsonl"  # a resumed search starts its bar at the evaluations already logged
        done = sum(1 for line in trials.read_bytes().splitlines() if line.strip()) if trials.is_file() else 0
        task = bar.add_task("", total=config.budget, completed=min(done, config.budget))
        front = search_step(request, progress=lambda line: bar.update(task, advance=1, description=line)).front
    table.save(config.folder.searched_table)
    return front, False


def _finetune(config: RunConfig, state: RunState, say: Say) -> tuple[Any, bool]:
    from edgeens.models.hybrid import HybridUNet
    from edgeens.train.finetune import FinetuneRequest, finetune_step

    folder = config.folder.finetune
    if config.folder.finetune_done():
        return HybridUNet.load(folder / "best.safetensors"), True
    candidates = tuple(c["architecture"] for c in state["search"]["candidates"])
    say(f"finetune: {', '.join(candidates)} ({config.finetune_iterations} iterations each)")
    device, precision = config.placement()
    request = FinetuneRequest(
        state["teacher"],
        state["distill"],
        candidates,
        folder,
        state.task,
        config.finetune_iterations,
        config.finetune_patches,
        checkpoint_every=50,
        jobs=config.jobs,  # candidates at a time, one process (one thread) each
        device=device,
        precision=precision,
    )
    finetune_step(request)
    return HybridUNet.load(folder / "best.safetensors"), False


def _compile(config: RunConfig, state: RunState, say: Say) -> tuple[dict, bool]:
    from edgeens.compile.artifact import ModelCard
    from edgeens.compile.pipeline import CompileOptions, compile_model

    model = state["finetune"]
    folder = config.folder.export
    manifest_path = folder / "compile.json"
    card = ModelCard.of(model, config.size, config.size)
    quantized = f"executorch--{config.quantize}" if config.quantize != "fp32" else None
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("model", {}).get("weights_sha256") != card.weights_sha256:
            manifest = {}
    have = set(manifest.get("targets", {}))
    if {"executorch", "onnx"} <= have and (quantized is None or quantized in have):
        return manifest, True
    if not {"executorch", "onnx"} <= have:
        say(f"compile: {model.architecture_string} at {config.size}x{config.size} to .pte and .onnx (checked)")
        manifest = compile_model(model, config.size, config.size, folder, CompileOptions(force=True), log=say)
    if quantized is not None:  # the deployed program, beside the float ones the comparison measures it against
        say(f"compile: the same hybrid in {config.quantize}, calibrated on {config.calibration_images} training crops")
        options = CompileOptions(("executorch",), precision=config.quantize, force=True)
        calibration = _quantization(config, state).calibration
        manifest = compile_model(model, config.size, config.size, folder, options, calibration, log=say)
    return manifest, False


def _compare(config: RunConfig, state: RunState, say: Say) -> tuple[dict, bool]:
    path = config.folder.compare_result
    done = read_json(path, "delete it: the compare step scores its rows again") if path.is_file() else None
    if done and set(compare_rows_labels(config.baselines)) <= {row["model"] for row in done["rows"]}:
        if not config.folder.crops.is_file():  # a finished comparison without its crops: save them now
            save_crops(config.folder, state["teacher"], state["finetune"], state.task)
        return done, True
    targets = state["compile"]["targets"]
    program = config.folder.export / targets["executorch"]["file"]
    quantization = _quantization(config, state)
    quantized = targets.get(f"executorch--{config.quantize}") if quantization.quantized else None
    request = CompareRequest(
        config.folder,
        state["teacher"],
        state["finetune"],
        program if config.device == "host" else None,
        state["distill"],
        _space(config, state),
        searched_table(config.run_dir, state["profile"]),
        config.size,
        state.task,
        config.finetune_iterations,
        config.finetune_patches,
        config.seed,
        config.jobs,
        config.baselines,
        *config.placement(),
        quantized_program=config.folder.export / quantized["file"] if quantized and config.device == "host" else None,
        quantization=quantization,
    )
    return compare_step(request, say), False


def _report(config: RunConfig, state: RunState, say: Say) -> tuple[Path, bool]:
    """The report, from the files the steps wrote, into the run folder (and a copy under --reports if asked)."""
    import shutil

    from edgeens.report.run import write_report

    _ = state["compare"]  # the report shows the comparison: RunState names the step to run first if it has not run
    index = write_report(config.folder, config.folder.report, config.penalty, config.families)
    if config.reports is not None:
        copy = config.reports / config.run_dir.name
        shutil.copytree(config.folder.report, copy, dirs_exist_ok=True)
        index = copy / index.name
    say(f"report: {index}")
    return index, False


# The steps in order: each takes (config, state, say) and returns (its outputs for later steps, whether they were
# already there).
STEP_FUNCTIONS: tuple[tuple[str, Callable[[RunConfig, RunState, Say], tuple[Any, bool]]], ...] = (
    ("teacher", _teacher),
    ("distill", _distill),
    ("profile", _profile),
    ("search", _search),
    ("finetune", _finetune),
    ("compile", _compile),
    ("compare", _compare),
    ("report", _report),
)
assert tuple(name for name, _ in STEP_FUNCTIONS) == STEPS
