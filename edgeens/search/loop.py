"""A search run in a folder: identity and reference point (search.json), the trial log (trials.jsonl), the front and
its knee (front.json); and the method comparison (compare/): ENS, its paper encoding, random search, NSGA-II and
the rule-based hybrid on the same objectives, budget and seeds, as hypervolume against evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeens.files import folder_lock, now, read_json, write_json
from edgeens.search.baselines import nsga2, random_search, rule_based
from edgeens.search.ens import (
    BatchEvaluate,
    Evaluate,
    Objectives,
    Problem,
    SearchSettings,
    TrialLog,
    architecture_check,
    ens,
    reference_point,
)
from edgeens.search.evaluate import SearchError
from edgeens.search.pareto import KNEE_METHOD, hypervolume, hypervolume_curve, knee, nearest_to_knee, pareto_mask

FORMAT = "edgeens.search.v1"
COMPARED = ("ens", "ens-relaxed", "random", "nsga2", "rule")


def _open_identity(path: Path, identity: dict[str, Any], force: bool) -> dict[str, Any]:
    """search.json: refuse to mix a folder's trials with a search of other settings."""
    if path.is_file() and not force:
        stored = read_json(
            path,
            "pass --force to start the search over, or delete it to resume trials.jsonl under the options given "
            "(they must be the ones the search ran with)",
        )
        differing = [k for k in identity if stored.get(k) != identity[k]]
        if differing:
            raise SearchError(
                f"{path.parent} holds a search with other {', '.join(differing)}; resume it with the same options, "
                "choose another --out, or pass --force to start over"
            )
        return stored
    if force:
        for name in ("trials.jsonl", "search.json", "front.json"):
            (path.parent / name).unlink(missing_ok=True)
    stored = {"format": FORMAT, **identity, "created": now()}
    write_json(path, stored)
    return stored


def run_search(
    problem: Problem,
    evaluate: Evaluate,
    out_dir: str | Path,
    settings: SearchSettings,
    identity: dict[str, Any],
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    batch_evaluate: BatchEvaluate | None = None,
) -> dict[str, Any]:
    """ENS into `out_dir` (resuming its trial log), then the front, knee and `settings.top_k` candidates written to
    front.json. `batch_evaluate` evaluates each batch of proposals at once (evaluate.WorkerPool). With
    `settings.max_penalty` (a latency budget) the search counts only architectures within it and the candidates are
    the best of those."""
    out = Path(out_dir)
    with folder_lock(out, "edgeens search"):
        return _run_search(problem, evaluate, out, settings, identity, force, progress, batch_evaluate)


# Settings a search folder may change on resume: the budget extends a finished search, the candidates are chosen
# again from the log. The bounds are in the identity under their own keys.
_NOT_KNOBS = ("budget", "top_k", "max_drop", "max_penalty")


def _run_search(
    problem: Problem,
    evaluate: Evaluate,
    out: Path,
    settings: SearchSettings,
    identity: dict[str, Any],
    force: bool,
    progress: Callable[[str], None] | None,
    batch_evaluate: BatchEvaluate | None,
) -> dict[str, Any]:
    settings.check(problem.space.size)
    meta_path = out / "search.json"
    knobs = {k: v for k, v in asdict(settings).items() if k not in _NOT_KNOBS}
    bounds = {"max_drop": settings.max_drop, "max_penalty": settings.max_penalty}
    meta = _open_identity(meta_path, {**identity, "settings": knobs, **bounds}, force)
    log = TrialLog(out / "trials.jsonl", check=architecture_check(problem))
    for warning in log.warnings():
        (progress or print)(warning + "; it is kept in trials.rejected.jsonl and the search goes on")
    objectives = Objectives(
        problem, evaluate, log, f"ens-{settings.encoding}", progress=progress, batch_evaluate=batch_evaluate
    )

    def keep_reference(reference: tuple[float, float]) -> None:
        if meta.get("reference") is None:
            meta["reference"] = list(reference)
            write_json(meta_path, meta)

    stored = meta.get("reference")
    ens(objectives, settings, tuple(stored) if stored else None, keep_reference)
    front = summarize(log.records, tuple(meta["reference"]), settings.top_k, settings.max_penalty)
    write_json(out / "front.json", front)
    return front


def summarize(
    records: list[dict[str, Any]], reference: tuple[float, float], top_k: int, max_penalty: float | None = None
) -> dict[str, Any]:
    """The front (by increasing penalty), its knee and the `top_k` candidates: those nearest the knee, or with a
    penalty budget, the `top_k` smallest PSNR drops within it (the knee if none is)."""
    points = np.array([(r["psnr_drop"], r["penalty"]) for r in records])
    chosen = knee(points)
    candidates = nearest_to_knee(points, chosen.index, top_k)
    within = [i for i in range(len(records)) if max_penalty is not None and records[i]["penalty"] <= max_penalty]
    if within:
        candidates = sorted(within, key=lambda i: -records[i]["psnr_drop"])[:top_k]

    def row(i: int) -> dict[str, Any]:
        r = records[i]
        return {
            "architecture": r["architecture"],
            "psnr": r["psnr"],
            "psnr_drop": r["psnr_drop"],
            "penalty": r["penalty"],
        }

    return {
        "evaluations": len(records),
        "reference": list(reference),
        "hypervolume": hypervolume(points, reference),
        "front": [row(i) | {"knee_distance": float(chosen.distances[i])} for i in chosen.front],
        "knee": row(chosen.index),
        "knee_method": KNEE_METHOD,
        "selection": "budget" if within else "knee",
        "max_penalty": max_penalty,
        "candidates": [row(i) for i in candidates],
    }


def compare_methods(
    problem: Problem,
    evaluate: Evaluate,
    out_dir: str | Path,
    settings: SearchSettings,
    seeds: int,
    exhaustive: bool = False,
    methods: tuple[str, ...] = COMPARED,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every method in `methods` for `seeds` seeds at `settings.budget` evaluations, sharing one evaluation cache
    (an architecture is evaluated once for all of them: the evaluation is deterministic). With `exhaustive`, every
    architecture is evaluated first, so hypervolumes are fractions of the true front's. Resumable: each (method,
    seed) has its own trial log under compare/."""
    unknown = set(methods) - set(COMPARED)
    if unknown:
        raise SearchError(f"unknown method(s) {', '.join(sorted(unknown))}; choose from {', '.join(COMPARED)}")
    settings.check(problem.space.size)
    folder = Path(out_dir) / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    shared: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for record in TrialLog(path).records:
            shared.setdefault(record["architecture"], record)
    if exhaustive:
        if problem.space.size > 5000:
            raise SearchError(f"--exhaustive evaluates every architecture; {problem.space.size} is too many")
        everything = Objectives(problem, evaluate, TrialLog(folder / "all.jsonl"), "all", shared, progress)
        for row in problem.all_indices():
            everything(problem.decode(row))
        reference = reference_point(problem, [r["psnr_drop"] for r in everything.log.records])
        best = hypervolume(_points(everything.log.records), reference)
    else:  # a reference every method shares: from the union of the seeds' initial designs
        drops = []
        for seed in range(seeds):
            starter = Objectives(problem, evaluate, TrialLog(folder / f"initial-seed{seed}.jsonl"), "initial", shared)
            random_search(starter, settings.initial, seed)
            drops += [r["psnr_drop"] for r in starter.log.records]
        reference = reference_point(problem, drops)
        best = None
    curves: dict[str, list[list[float]]] = {}
    for method in methods:
        for seed in range(seeds if method != "rule" else 1):
            log = TrialLog(folder / f"{method}-seed{seed}.jsonl")
            objectives = Objectives(problem, evaluate, log, method, shared, progress)
            if method in ("ens", "ens-relaxed"):
                encoding = "relaxed" if method == "ens-relaxed" else "categorical"
                ens(objectives, replace(settings, seed=seed, encoding=encoding), reference)
            elif method == "random":
                random_search(objectives, settings.budget, seed)
            elif method == "nsga2":
                nsga2(objectives, settings.budget, seed)
            else:
                rule_based(objectives)
            curves.setdefault(method, []).append(hypervolume_curve(_points(log.records), reference).tolist())
    if best is None:  # no true front: fractions of the best hypervolume any method found
        every = np.array([(r["psnr_drop"], r["penalty"]) for r in shared.values()])
        best = hypervolume(every[pareto_mask(every)], reference)
    result = {
        "budget": settings.budget,
        "initial": settings.initial,
        "batch": settings.batch,
        "seeds": seeds,
        "reference": list(reference),
        "best_hypervolume": best,
        "best_is_true_front": exhaustive,
        "evaluations_counted": "every evaluation, the initial design included",
        "curves": curves,
        "created": now(),
    }
    write_json(Path(out_dir) / "compare.json", result)
    return result


def fraction_at(result: dict[str, Any], method: str, evaluations: int) -> list[float]:
    """Hypervolume as a fraction of the best, after `evaluations` evaluations, one value per seed."""
    values = []
    for curve in result["curves"][method]:
        if curve:
            values.append(curve[min(evaluations, len(curve)) - 1] / result["best_hypervolume"])
    return values


def _points(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([(r["psnr_drop"], r["penalty"]) for r in records]).reshape(-1, 2)
