"""The search step: what `edgeens search` and `edgeens run` both call. It builds the evaluation of hybrids on the
task's validation crops, the search's identity (what its trial log may be resumed with) and runs ENS
into one folder, returning the front."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeens.data.task import TaskData
from edgeens.models.checkpoint import weights_hash
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace, families_to_dict
from edgeens.search.ens import BatchEvaluate, Evaluate, Problem, SearchSettings
from edgeens.search.evaluate import HybridEvaluator
from edgeens.search.loop import run_search
from edgeens.train.pool import BlockPool

VALIDATION_SET = "photos-val-crops"  # the catalogue's val photos in crops (edgeens.data.photos.validation_crops)


@dataclass(frozen=True)
class SearchRequest:
    """One search: the teacher and its pool (`pool_path` is recorded in the identity), the space (the pool's, or a
    subset of its families), the penalty of every (stage, choice) and where it came from (a latency table's file
    name, or "heuristic"), the deployment size, the task whose validation crops score the hybrids, and the budget."""

    teacher: Restormer
    pool: BlockPool
    pool_path: Path
    space: SearchSpace
    stage_costs: dict[str, dict[str, float]]
    penalty_source: str
    size: tuple[int, int]
    task: TaskData
    settings: SearchSettings  # the budget, the candidates handed on and the bounds on what counts
    out: Path
    force: bool = False
    device: torch.device = torch.device("cpu")  # where the hybrids are evaluated (edgeens.devices.resolve_device)


@dataclass(frozen=True)
class SearchResult:
    front: dict[str, Any]  # front.json: the front, the knee, the candidates for fine-tuning
    teacher_psnr: float  # on the validation crops, the PSNR drops' reference


def search_identity(request: SearchRequest) -> dict[str, Any]:
    """What a trial log records about its search: a later run resumes it only if all of this agrees."""
    return {
        "teacher_sha256": weights_hash(request.teacher),
        "pool": str(request.pool_path),
        "penalty": request.penalty_source,
        "size": list(request.size),
        "validation": {"set": VALIDATION_SET if request.task.synthetic else "val-crops", **request.task.identity()},
        "families": families_to_dict(request.space.families),
    }


def evaluator_for(request: SearchRequest) -> HybridEvaluator:
    """The PSNR objective: hybrids of the teacher and the pool on the task's validation crops."""
    pairs = request.task.validation_crops()
    return HybridEvaluator(request.teacher, request.pool, pairs, space=request.space, device=request.device)


def objective(evaluator: HybridEvaluator) -> Evaluate:
    """The evaluator as the search loop calls it: architecture -> its trial record's PSNR fields."""

    def evaluate(architecture: str) -> dict[str, float]:
        result = evaluator(architecture)
        return {"psnr": result.psnr, "psnr_drop": result.psnr_drop, "seconds": result.seconds}

    return evaluate


def search_step(
    request: SearchRequest,
    progress: Callable[[str], None] | None = None,
    batch_evaluate: BatchEvaluate | None = None,
) -> SearchResult:
    """ENS over `request.space` into `request.out` (resuming its trial log); `batch_evaluate` evaluates each batch
    of proposals in worker processes (search.evaluate.WorkerPool)."""
    evaluator = evaluator_for(request)
    front = run_search(
        Problem(request.space, request.stage_costs),
        objective(evaluator),
        request.out,
        request.settings,
        search_identity(request),
        request.force,
        progress,
        batch_evaluate,
    )
    return SearchResult(front, evaluator.teacher_psnr)


def front_candidates(search_dir: Path) -> list[str]:
    """The architectures a search handed to fine-tuning (its front.json's candidates)."""
    from edgeens.files import read_json
    from edgeens.search.evaluate import SearchError

    front = Path(search_dir) / "front.json"
    if not front.is_file():
        raise SearchError(f"{front} does not exist: run edgeens search first, or name candidates with --arch")
    fix = "run edgeens search with the same options again: it rewrites front.json from trials.jsonl"
    return [c["architecture"] for c in read_json(front, fix).get("candidates", [])]


def compare_search_methods(
    request: SearchRequest, seeds: int, exhaustive: bool, command: str, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """ENS, its paper encoding and the baselines on `request`'s problem, `seeds` seeds each (resumable, one shared
    evaluation cache); writes and returns compare.json (hypervolume curves)."""
    from edgeens.files import write_json
    from edgeens.search.loop import compare_methods

    evaluator = evaluator_for(request)
    problem = Problem(request.space, request.stage_costs)
    result = compare_methods(
        problem, objective(evaluator), request.out, request.settings, seeds, exhaustive, progress=progress
    )
    result["command"] = command
    result["penalty"] = request.penalty_source
    result["teacher_psnr"] = evaluator.teacher_psnr
    result["teacher_sha256"] = weights_hash(request.teacher)
    write_json(request.out / "compare.json", result)
    return result
