"""The compare step: the paper's comparison at this scale, what `edgeens run` ends with before its report.

The teacher, the ENS hybrid and the alternatives (the teacher itself fine-tuned as long as the hybrids, MambaIR
only, a random hybrid, a 50/50 hybrid, the ENS architecture from random weights), each trained with the fine-tuning
recipe, scored on the task's whole test images that nothing in the run trains, selects or tunes on, with the latency
table's prediction and, on the host, the teacher and the ENS hybrid's programs timed end to end in the same rounds.
It writes `compare/compare.json` and the crops the report shows (`compare/crops.npz`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeens.compile.quantize import Quantization
from edgeens.data.task import TaskData
from edgeens.devices import on_device
from edgeens.files import atomic_path, now, write_json
from edgeens.models.hybrid import HybridUNet
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace, format_architecture
from edgeens.profile.table import LatencyTable
from edgeens.rundir import TEACHER_FINETUNED, RunFolder
from edgeens.train.finetune import FinetunePatches
from edgeens.train.pool import BlockPool

Pairs = Iterable[tuple[str, np.ndarray, np.ndarray]]
# Test images up to the catalogue's size (768x512) are restored in one piece, as every committed figure was; larger
# ones (a user's 1280x720 GoPro frames) in tiles of the deployment size, blended as `edgeens restore` and the phone's
# program do: one eager forward of a whole 1280x720 frame peaked at 2.5-4.8 GB per model, a 512-px tile at 1.5-1.8.
WHOLE_PIXELS, SCORE_OVERLAP = 768 * 512, 32
# The alternatives a comparison can train, by the name `edgeens run --baselines` takes, and their rows' labels.
# The teacher and the ENS hybrid are always compared; on a CPU the MambaIR-heavy rows train 10-50x slower than the
# others (seconds per iteration), so a run may leave them out and add them later.
BASELINES = {
    "teacher-finetuned": TEACHER_FINETUNED,
    "mambair-only": "MambaIR only",
    "random": "random hybrid",
    "fifty-fifty": "50/50 hybrid",
    "random-init": "ENS, random init",
}


@dataclass(frozen=True)
class CompareRequest:
    """The run's teacher, its fine-tuned ENS hybrid and compiled program, the pool and space the alternatives are
    composed from, the table their latency is predicted with, and the training budget every trained row gets."""

    folder: RunFolder
    teacher: Restormer
    hybrid: HybridUNet
    hybrid_program: Path | None  # the ENS hybrid's .pte: timed with the teacher's on the host (None: predictions only)
    pool: BlockPool
    space: SearchSpace
    table: LatencyTable
    size: int
    task: TaskData
    iterations: int = 100
    patches: FinetunePatches = FinetunePatches()  # the fine-tuning step's: every trained row is trained alike
    seed: int = 0
    jobs: int = 1
    baselines: tuple[str, ...] = tuple(BASELINES)  # which alternatives to train and score (names of BASELINES)
    device: torch.device = torch.device("cpu")  # where the rows train and are scored
    precision: str = "fp32"  # their training's forward pass
    # A quantized deployment: the ENS hybrid's program in that precision (the compile step's) and the calibration
    # the teacher's is made with; both are timed and scored beside the float programs.
    quantized_program: Path | None = None
    quantization: Quantization = Quantization()


def parse_baselines(text: str) -> tuple[str, ...]:
    """`--baselines` ("all", "none" or names of BASELINES, comma-separated) as the names, in the table's order."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return tuple(BASELINES)
    if names == {"none"}:
        return ()
    unknown = sorted(names - set(BASELINES))
    if unknown or not names:
        raise ValueError(
            f"unknown --baselines {', '.join(unknown) or '(empty)'}; give all, none or a comma-separated list of: "
            + ", ".join(BASELINES)
        )
    return tuple(n for n in BASELINES if n in names)


def compare_rows_labels(baselines: tuple[str, ...]) -> list[str]:
    """The labels of the rows a comparison with these `baselines` holds, in the table's order."""
    return ["teacher", "ENS hybrid", *(BASELINES[name] for name in BASELINES if name in baselines)]


def compare_rows(request: CompareRequest) -> list[tuple[str, str, str | None]]:
    """(label, architecture, how it is trained: None as it is, "pool" composed from the pool, "scratch")."""
    space = request.space
    rng = np.random.default_rng(request.seed)
    has_mambair = any(f.letter == "M" for f in space.families)
    mamba_only = "-".join(space.family_only("M") if has_mambair else space.mamba_only)
    random_arch = "-".join(s.choices[int(rng.integers(len(s.choices)))] for s in space.stages)
    fifty = "-".join(s.choices[1] if i % 2 == 0 else "R" for i, s in enumerate(space.stages))  # as baselines.py
    teacher = format_architecture(space.teacher_only)
    ens = request.hybrid.architecture_string
    how = {  # each alternative's architecture and how it is trained, by its name in BASELINES
        # The teacher given the same extra training as every hybrid: the fair baseline for the PSNR loss.
        "teacher-finetuned": (teacher, "pool"),
        "mambair-only": (mamba_only, "pool"),
        "random": (random_arch, "pool"),
        "fifty-fifty": (fifty, "pool"),
        "random-init": (ens, "scratch"),
    }
    chosen = [(BASELINES[name], *how[name]) for name in BASELINES if name in request.baselines]
    return [("teacher", teacher, None), ("ENS hybrid", ens, None), *chosen]


def compare_step(request: CompareRequest, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the rows that are not trained yet (resumable, `jobs` at a time), score every row on the task's whole
    test images (read one at a time), time the teacher and the ENS hybrid, and write compare.json and the report's
    crops."""
    from edgeens.train.finetune import RESULT, finetune_recipe, write_hybrid
    from edgeens.train.loop import Training, check_same_recipe, train_in_processes, training_seconds
    from edgeens.workers import run_in_processes

    folder, teacher, best = request.folder.compare, request.teacher, request.hybrid
    rows_spec = compare_rows(request)
    folders = {label: folder / label.replace(" ", "-").replace("/", "-").replace(",", "") for label, *_ in rows_spec}
    recipe = finetune_recipe(request.iterations, request.patches, checkpoint_every=50, precision=request.precision)
    pending = []
    for label, architecture, how in rows_spec:
        if how is not None:  # finished rows too: their result must be this recipe's
            check_same_recipe(folders[label], recipe)
        if how is None or (folders[label] / RESULT).is_file():
            continue
        if how == "pool":
            model = HybridUNet.from_teacher(teacher, architecture, request.pool, request.space.families)
        else:
            torch.manual_seed(request.seed)
            model = HybridUNet(teacher.config, architecture, families=request.space.families)
        pending.append((model, folders[label], label))  # the data is read only if something is left to train
    if pending:
        say(f"compare: training {', '.join(label for *_, label in pending)}, {request.jobs} at a time")
        data, validation = request.task.training(), request.task.validation_crops()
        trainings = [
            Training(model, data, recipe, folder, write_hybrid, validation, label, device=request.device)
            for model, folder, label in pending
        ]
        train_in_processes(trainings, request.jobs, say)
    task = request.task
    measured, timing = time_teacher_and_hybrid(request, say) if request.hybrid_program else ({}, {})
    quantized = quantized_rows(request, measured, say) if request.quantized_program else []
    models = {
        label: (teacher if label == "teacher" else best) if how is None else HybridUNet.load(folders[label] / RESULT)
        for label, _, how in rows_spec
    }
    # Whole test images, one model per worker, each reading them one at a time: the MambaIR stacks' eager scans
    # take minutes per model, and a user's test split need not fit in memory.
    say(f"compare: scoring {len(models)} models on {task.test_count} whole test images, {request.jobs} at a time")
    if request.device.type == "cpu":
        tasks = [(label, model, task, request.size) for label, model in models.items()]
        scores = {done[0]: result for done, result in run_in_processes(_labelled_score, tasks, request.jobs)}
    else:  # one GPU restores faster than processes sharing it
        scores = {}
        for label, model in models.items():
            with on_device(model, request.device):
                scores[label] = score(model, task.test_pairs(), request.size)
    trained_in = folders | {
        "ENS hybrid": request.folder.finetune / best.architecture_string  # the candidate folders are named so
    }
    rows = []
    for label, architecture, _ in rows_spec:
        psnr, ssim = scores[label]
        predicted = request.table.predict_ms(architecture)
        rows.append(
            {
                "model": label,
                "architecture": architecture,
                "psnr": psnr,
                "ssim": ssim,
                "predicted_ms": predicted,
                "measured_ms": measured.get(label),
                # the embedded teacher's own training is in its asset's JSON; the ENS hybrid trained in finetune/
                "train_seconds": None if label == "teacher" else training_seconds(trained_in[label]),
            }
        )
    for row in rows:  # like with like: measured against measured, else prediction against prediction
        both = row["measured_ms"] and rows[0]["measured_ms"]
        row["speedup"] = (
            rows[0]["measured_ms"] / row["measured_ms"] if both else rows[0]["predicted_ms"] / row["predicted_ms"]
        )
        row["speedup_from"] = "measured" if both else "predicted"
    rows += quantized
    say("compare: scoring the references (the degraded input and the task's classical methods)")
    references = score_references(task)
    result = {
        "rows": rows,
        "references": references,
        "scored_on": f"{task.test_count} whole test images of {task.describe()} (images over {WHOLE_PIXELS:,} pixels "
        f"restored in {request.size}-px tiles blended over {SCORE_OVERLAP} px, as edgeens restore does)",
        "iterations": request.iterations,
        "schedule": {"patch_sizes": recipe.schedule.patch_sizes, "batch_sizes": recipe.schedule.batch_sizes},
        "timing": timing,
        "predicted_precision": request.table.precision,  # every row's predicted_ms is of programs in this precision
        "created": now(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_crops(request.folder, teacher, best, task)
    write_json(request.folder.compare_result, result)
    return result


def score_references(task: TaskData) -> list[dict[str, Any]]:
    """Mean PSNR / SSIM of each of the task's references (edgeens.classical.task_references) on the test pairs."""
    from edgeens.classical import task_references
    from edgeens.metrics import psnr, ssim

    references = task_references(task)
    scores: dict[str, list[tuple[float, float]]] = {r.label: [] for r in references}
    for name, lq, gt in task.test_pairs():
        for reference in references:
            out = reference.restore(name, lq)
            scores[reference.label].append((psnr(out, gt), ssim(out, gt)))
    return [
        {
            "model": r.label,
            "note": r.note,
            "psnr": float(np.mean([p for p, _ in scores[r.label]])),
            "ssim": float(np.mean([s for _, s in scores[r.label]])),
        }
        for r in references
    ]


def save_crops(folder: RunFolder, teacher: torch.nn.Module, hybrid: torch.nn.Module, task: TaskData) -> None:
    """The degraded crop, the teacher's and the ENS hybrid's restorations and the clean crop, for the report."""
    from edgeens.models.images import restore_whole

    _, lq, gt = task.report_crop()
    crops = {
        "degraded": lq,
        "teacher": restore_whole(teacher, lq),
        "ENS hybrid": restore_whole(hybrid, lq),
        "clean": gt,
    }
    with atomic_path(folder.crops) as tmp, tmp.open("wb") as file:
        np.savez(file, **crops)


def time_teacher_and_hybrid(request: CompareRequest, say: Callable[[str], None]) -> tuple[dict, dict]:
    """Median ms of the teacher and the compiled ENS hybrid (and of both in the quantized precision, when the run
    deploys one), whole programs timed in the same shuffled rounds (a speed-up from two timings taken at different
    times would carry the machine's drift between them)."""
    from edgeens.profile.host import executorch_runner, host_description, measure_programs
    from edgeens.profile.request import TimingPolicy
    from edgeens.workers import set_threads

    threads = 1
    set_threads(threads)
    example = (torch.rand(1, 3, request.size, request.size, generator=torch.Generator().manual_seed(0)),)
    programs = {"teacher": teacher_program(request, Quantization()), "ENS hybrid": request.hybrid_program}
    if request.quantized_program is not None:
        label = request.quantization.precision
        programs[f"teacher {label}"] = teacher_program(request, request.quantization)
        programs[f"ENS hybrid {label}"] = request.quantized_program
    policy = TimingPolicy(rounds=4, max_seconds=20.0)
    say(f"compare: timing {', '.join(programs)} end to end ({policy.rounds} shuffled rounds, 1 thread)")
    samples = measure_programs({k: partial(executorch_runner, p, example) for k, p in programs.items()}, policy)
    timing = {
        "runtime": "executorch-xnnpack",
        "threads": threads,
        "policy": policy.to_dict(),
        "host": host_description(),
        "samples": {k: len(v) for k, v in samples.items()},
        "spread_ms": {k: [float(np.percentile(v, 10)), float(np.percentile(v, 90))] for k, v in samples.items()},
    }
    return {k: float(np.median(v)) for k, v in samples.items()}, timing


def teacher_program(request: CompareRequest, quantization: Quantization) -> Path:
    """The teacher lowered as the ENS hybrid was (`compare/teacher.pte`, `teacher-w8a8.pte`), made once."""
    from edgeens.compile.executorch import lower_to_executorch
    from edgeens.compile.quantize import quantize_for_xnnpack

    path = request.folder.compare / f"teacher{quantization.suffix}.pte"
    if not path.is_file():
        example = (torch.rand(1, 3, request.size, request.size, generator=torch.Generator().manual_seed(0)),)
        model: torch.nn.Module = request.teacher.eval()
        if quantization.quantized:
            model = quantize_for_xnnpack(model, example, quantization.calibration, quantization.scope)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            lower_to_executorch(model, example).save(tmp)
    return path


def quantized_rows(request: CompareRequest, measured: dict[str, float], say: Callable[[str], None]) -> list[dict]:
    """The teacher's and the ENS hybrid's rows in the deployed precision: their programs scored on the test images
    in blended tiles of the program's size beside the float programs scored the same way (the gap is the
    quantization's alone), timed in the float programs' rounds (`measured`)."""
    from edgeens.restore import load_restorer

    label = request.quantization.precision
    programs = {
        "teacher": (teacher_program(request, Quantization()), teacher_program(request, request.quantization)),
        "ENS hybrid": (request.hybrid_program, request.quantized_program),
    }
    architectures = {
        "teacher": format_architecture(request.space.teacher_only),
        "ENS hybrid": request.hybrid.architecture_string,
    }
    say(f"compare: scoring the float and {label} programs on the test images in {request.size}-px tiles")
    rows = []
    for name, (float_path, quantized_path) in programs.items():
        float_psnr, _ = score_restorer(load_restorer(float_path), request.task.test_pairs(), request.size)
        psnr_value, ssim_value = score_restorer(load_restorer(quantized_path), request.task.test_pairs(), request.size)
        architecture = architectures[name]
        row = {
            "model": f"{name} {label}",
            "architecture": architecture,
            "psnr": psnr_value,
            "ssim": ssim_value,
            "psnr_vs_float": psnr_value - float_psnr,  # against the same model's float program, tiled alike
            "precision": label,
            "predicted_ms": request.table.predict_ms(architecture) if request.table.precision == label else None,
            "measured_ms": measured.get(f"{name} {label}"),
        }
        teacher_ms = measured.get("teacher")
        row["speedup"] = teacher_ms / row["measured_ms"] if teacher_ms and row["measured_ms"] else None
        row["speedup_from"] = "measured against the float teacher"
        rows.append(row)
    return rows


def _labelled_score(label: str, model: torch.nn.Module, task: TaskData, tile: int) -> tuple[float, float]:
    torch.set_num_threads(1)  # a worker of its own: one thread, as every other worker
    return score(model, task.test_pairs(), tile)


def score(model: torch.nn.Module, pairs: Pairs, tile: int = 256) -> tuple[float, float]:
    """Mean PSNR and SSIM (RGB, BasicSR conventions) of `model`'s restorations of (name, degraded, clean) pairs: in
    one piece up to WHOLE_PIXELS, in blended `tile`-px tiles above (RGB inputs)."""
    from edgeens.devices import module_device
    from edgeens.metrics import psnr, ssim
    from edgeens.models.images import restore_whole
    from edgeens.restore import eager_restorer, restore_array

    tiled = eager_restorer(model, "", module_device(model))
    psnrs, ssims = [], []
    for _, lq, gt in pairs:
        if lq.shape[0] * lq.shape[1] <= WHOLE_PIXELS or lq.shape[2] != 3:
            out = restore_whole(model, lq)
        else:
            out = restore_array(tiled, lq, tile, SCORE_OVERLAP)
        psnrs.append(psnr(out, gt))
        ssims.append(ssim(out, gt))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def score_restorer(restorer: Any, pairs: Pairs, tile: int) -> tuple[float, float]:
    """Mean PSNR and SSIM of a restorer (a compiled program, or eager) on (name, degraded, clean) pairs, restored
    in blended `tile`-px tiles as `edgeens restore` and the phone do."""
    from edgeens.metrics import psnr, ssim
    from edgeens.restore import OVERLAP, restore_array

    psnrs, ssims = [], []
    for _, lq, gt in pairs:
        out = restore_array(restorer, lq, tile, min(OVERLAP, tile // 4))  # small toy tiles: a smaller overlap
        psnrs.append(psnr(out, gt))
        ssims.append(ssim(out, gt))
    return float(np.mean(psnrs)), float(np.mean(ssims))
