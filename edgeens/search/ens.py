"""ENS: which stages to swap, found by multi-objective Bayesian optimisation (spec/paper.md step 3).

Objective 1 is the validation PSNR drop of the hybrid composed from the pool (evaluate.py); objective 2 is the
penalty, a known sum of per-stage costs from a latency table (or the paper's heuristic). Only objective 1 is
modelled: a GP over the 8 categorical stage choices (MixedSingleTaskGP), next to the penalty as an exact,
deterministic model. The acquisition is qLogNEHVI, maximised over every unevaluated architecture that could still
improve the front (a cheap upper-confidence screen, then exact enumeration of the survivors; spec/search.md 1.7).
The paper's encoding, a continuous relaxation in [0, 1]^8 cut by fixed thresholds with both objectives modelled by
GPs, is available as `encoding="relaxed"` for comparison.

Every evaluation is appended to the trial log (trials.jsonl) as it finishes; a search started again with the same
settings replays the log instead of evaluating again, so a killed search resumes without losing or repeating one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgeens.files import atomic_path
from edgeens.models.space import SearchSpace, format_architecture
from edgeens.search.evaluate import SearchError

ENCODINGS = ("categorical", "relaxed")
UCB_BETA = 3.0  # the screen keeps an architecture if mean + 3 std of its PSNR drop could still raise the front
# Spaces up to this size are screened whole; larger ones (several families: millions) through a random sample plus
# every one-stage change of each evaluated architecture.
ENUMERATE_LIMIT = 100_000
RANDOM_CANDIDATES = 20_000


@dataclass(frozen=True)
class SearchSettings:
    """The search's budget and knobs. `initial` uniform random architectures first, then batches of `batch`;
    `top_k` candidates handed to fine-tuning; `max_drop` and `max_penalty` bound what counts (the reference point)."""

    budget: int = 60
    initial: int = 16
    batch: int = 4
    seed: int = 0
    encoding: str = "categorical"
    mc_samples: int = 64
    max_candidates: int = 256
    top_k: int = 5
    max_drop: float | None = None  # the largest PSNR drop (dB) that counts (None: from the initial design)
    max_penalty: float | None = None  # a latency budget for the stages (ms with a calibrated penalty)

    def check(self, space_size: int) -> None:
        if self.encoding not in ENCODINGS:
            raise SearchError(f"unknown encoding {self.encoding!r}; choose one of: {', '.join(ENCODINGS)}")
        if self.initial < 2:
            raise SearchError(
                f"the initial design needs at least 2 architectures (a GP needs data), got {self.initial}"
            )
        if self.budget < self.initial:
            raise SearchError(
                f"the budget ({self.budget} evaluations) is smaller than the initial design ({self.initial}); "
                f"raise --budget or lower --initial"
            )
        if self.budget > space_size:
            raise SearchError(f"the budget ({self.budget}) exceeds the number of architectures ({space_size})")
        if self.batch < 1:
            raise SearchError(f"the batch size must be at least 1, got {self.batch}")


class Problem:
    """The space with its per-stage penalties, and architectures as integer vectors (choice index per stage)."""

    def __init__(self, space: SearchSpace, penalty: dict[str, dict[str, float]]) -> None:
        self.space = space
        missing = [f"{s.name}--{c}" for s in space.stages for c in s.choices if c not in penalty.get(s.name, {})]
        if missing:
            raise SearchError(f"the penalty table lacks {', '.join(missing[:6])}: it was made for another space")
        self.cardinalities = [len(s.choices) for s in space.stages]
        table = torch.zeros(len(space.stages), max(self.cardinalities), dtype=torch.float64)
        for i, stage in enumerate(space.stages):
            for j, choice in enumerate(stage.choices):
                table[i, j] = penalty[stage.name][choice]
        self.stage_penalties = table
        self.max_penalty = float(sum(table[i, :k].max() for i, k in enumerate(self.cardinalities)))
        self.min_penalty = float(sum(table[i, :k].min() for i, k in enumerate(self.cardinalities)))

    def encode(self, architecture: str) -> list[int]:
        tokens = self.space.parse(architecture)
        return [stage.choices.index(t) for stage, t in zip(self.space.stages, tokens, strict=True)]

    def decode(self, indices: Any) -> str:
        return format_architecture(
            [stage.choices[int(i)] for stage, i in zip(self.space.stages, list(indices), strict=True)]
        )

    def penalty(self, X: Tensor) -> Tensor:
        """Penalty of each row of X (..., 8) of choice indices (floats are rounded): exact, no model."""
        index = X.round().long().clamp(min=0)
        stages = torch.arange(index.shape[-1]).expand_as(index)
        return self.stage_penalties[stages, index].sum(-1).to(X.dtype if X.is_floating_point() else torch.float64)

    def all_indices(self) -> Tensor:
        """Every architecture as a row of choice indices (34,560 x 8 for the paper preset)."""
        grids = torch.meshgrid(*(torch.arange(k) for k in self.cardinalities), indexing="ij")
        return torch.stack([g.reshape(-1) for g in grids], dim=-1)

    def flat(self, indices: Tensor) -> Tensor:
        """One integer per architecture (mixed-radix number of its choice indices), for fast membership tests."""
        strides = torch.tensor([math.prod(self.cardinalities[i + 1 :]) for i in range(len(self.cardinalities))])
        return (indices.long() * strides).sum(-1)

    def random_indices(self, rng: np.random.Generator) -> list[int]:
        return [int(rng.integers(k)) for k in self.cardinalities]

    def candidate_indices(self, seen: Tensor, seed: int) -> Tensor:
        """The unevaluated architectures the acquisition looks at (rows of choice indices): all of them in a small
        space; else RANDOM_CANDIDATES uniform ones plus every one-stage change of each evaluated architecture."""
        if self.space.size <= ENUMERATE_LIMIT:
            pool = self.all_indices()
        else:
            generator = torch.Generator().manual_seed(seed)
            columns = [torch.randint(k, (RANDOM_CANDIDATES,), generator=generator) for k in self.cardinalities]
            neighbours = []
            for stage, k in enumerate(self.cardinalities):
                changed = seen.long().repeat_interleave(k, dim=0)
                changed[:, stage] = torch.arange(k).repeat(len(seen))
                neighbours.append(changed)
            pool = torch.cat([torch.stack(columns, dim=-1), *neighbours])
            pool = pool[_first_occurrences(self.flat(pool))]
        return pool[~torch.isin(self.flat(pool), self.flat(seen.long()))]


# --- the trial log -------------------------------------------------------------------------------------------------


class TrialLog:
    """`trials.jsonl`: one JSON line per evaluated architecture, appended and flushed (and fsynced) as each
    evaluation ends. Opening it reads every valid record; a line that is not one (blank, garbage, a record without
    its numbers, an architecture `check` refuses, a repeat) is skipped, never the valid records after it. Before the
    first append the file is rewritten without those lines, which are kept in `trials.rejected.jsonl` with the
    reason (nothing is lost), and a line cut short by a kill at the end is dropped, so the next append starts clean.
    Read-only users (reports) never change the file."""

    NUMBERS = ("psnr", "psnr_drop", "penalty")

    def __init__(self, path: str | Path, check: Callable[[str], str | None] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, str, str]] = []  # (line number, line, reason)
        self._torn = False
        self.by_architecture: dict[str, dict[str, Any]] = {}
        lines = self.path.read_bytes().splitlines(keepends=True) if self.path.is_file() else []
        for number, line in enumerate(lines, 1):
            if number == len(lines) and not line.endswith(b"\n"):
                self._torn = True  # cut short by a kill: its architecture is simply evaluated again
                continue
            record, reason = self._parse(line, check)
            if reason is not None:
                self.rejected.append((number, line.decode(errors="replace").rstrip("\n"), reason))
                continue
            self.records.append(record)
            self.by_architecture[record["architecture"]] = record

    def _parse(self, line: bytes, check: Callable[[str], str | None] | None) -> tuple[dict, str | None]:
        if not line.strip():
            return {}, "blank line"
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}, "not JSON"
        if not isinstance(record, dict) or not isinstance(record.get("architecture"), str):
            return {}, "not a trial record (no architecture)"
        for key in self.NUMBERS:
            value = record.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                return {}, f"no finite {key}"
        if record["architecture"] in self.by_architecture:
            return {}, "repeats an architecture already logged"
        reason = check(record["architecture"]) if check else None
        return record, reason

    def warnings(self) -> list[str]:
        """One line per skipped line, for the user."""
        return [f"{self.path}: line {n} skipped ({why}): {text[:80]!r}" for n, text, why in self.rejected]

    def _repair(self) -> None:
        """Rewrite the log with its valid records only (atomically), the rejected lines kept beside it."""
        if self.rejected:
            side = self.path.with_name(self.path.stem + ".rejected.jsonl")
            with side.open("a") as f:
                for number, text, why in self.rejected:
                    f.write(json.dumps({"line": number, "reason": why, "text": text}) + "\n")
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self.rejected, self._torn = [], False

    def append(self, record: dict[str, Any]) -> None:
        if self.rejected or self._torn:
            self._repair()
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        self.by_architecture[record["architecture"]] = record


def architecture_check(problem: Problem) -> Callable[[str], str | None]:
    """A TrialLog check: the reason an architecture string is not one of `problem`'s space, else None."""

    def check(architecture: str) -> str | None:
        try:
            problem.encode(architecture)
        except (ValueError, IndexError) as err:
            return f"not in the search space: {err}"
        return None

    return check


Evaluate = Callable[[str], dict[str, float]]  # architecture -> {"psnr", "psnr_drop", "seconds", ...}
# Several architectures at once (in worker processes): yields (architecture, result) as each finishes.
BatchEvaluate = Callable[[list[str]], Iterator[tuple[str, dict[str, float]]]]


class Objectives:
    """What every method calls: evaluate an architecture once (or look it up in the log or a shared cache), append
    it to the log, and return (psnr_drop, penalty). Repeats of an architecture are free and not logged again."""

    def __init__(
        self,
        problem: Problem,
        evaluate: Evaluate,
        log: TrialLog,
        method: str,
        shared: dict[str, dict[str, Any]] | None = None,
        progress: Callable[[str], None] | None = None,
        batch_evaluate: BatchEvaluate | None = None,
    ) -> None:
        self.problem, self.evaluate, self.log, self.method = problem, evaluate, log, method
        self.shared = shared if shared is not None else {}
        self.progress = progress
        self.batch_evaluate = batch_evaluate

    @property
    def count(self) -> int:
        return len(self.log.records)

    def __call__(self, architecture: str, **extra: Any) -> tuple[float, float]:
        if architecture in self.log.by_architecture:
            record = self.log.by_architecture[architecture]
            return record["psnr_drop"], record["penalty"]
        result = self.shared.get(architecture)
        if result is None:
            result = self.evaluate(architecture)
            self.shared[architecture] = result
        return self._record(architecture, result, extra)

    def many(self, proposals: list[tuple[str, dict[str, Any]]]) -> None:
        """Evaluate a batch: at once through `batch_evaluate` if there is one (results are logged in the order
        they finish), else one after another."""
        todo = [name for name, _ in proposals if name not in self.log.by_architecture and name not in self.shared]
        extras = dict(proposals)
        if self.batch_evaluate is not None and len(todo) > 1:
            for name, result in self.batch_evaluate(todo):
                self.shared[name] = result
                self._record(name, result, extras[name])
        for name, extra in proposals:
            self(name, **extra)

    def _record(self, architecture: str, result: dict[str, Any], extra: dict[str, Any]) -> tuple[float, float]:
        penalty = float(self.problem.penalty(torch.tensor(self.problem.encode(architecture))))
        record = {
            "architecture": architecture,
            "psnr": result["psnr"],
            "psnr_drop": result["psnr_drop"],
            "penalty": penalty,
            "method": self.method,
            "evaluation": self.count + 1,
            "seconds": result.get("seconds", 0.0),
            **extra,
        }
        self.log.append(record)
        if self.progress:
            self.progress(
                f"{self.method}: {self.count} evaluated; {architecture} drop {record['psnr_drop']:+.3f} dB, "
                f"penalty {penalty:.4g}"
            )
        return record["psnr_drop"], penalty


def reference_point(
    problem: Problem, drops: list[float], max_drop: float | None = None, max_penalty: float | None = None
) -> tuple[float, float]:
    """(lowest PSNR drop that counts, highest penalty that counts): the drop bound is `-max_drop` if given, else 10%
    of the observed range below the worst drop seen (fixed once chosen, so hypervolumes stay comparable); the
    penalty bound is `max_penalty` (a latency budget: the search then spends itself below it) or just above the
    space's largest penalty."""
    span = problem.max_penalty - problem.min_penalty
    penalty_ref = problem.max_penalty + 0.1 * (span if span > 0 else 1.0) if max_penalty is None else max_penalty
    if max_penalty is not None and max_penalty <= problem.min_penalty:
        raise SearchError(
            f"the penalty budget {max_penalty:.4g} is below the cheapest architecture's {problem.min_penalty:.4g}; "
            "raise it (ask for a smaller --speedup)"
        )
    if max_drop is not None:
        return -abs(max_drop), penalty_ref
    low, high = min(drops), max(drops)
    return low - 0.1 * ((high - low) if high > low else 1.0), penalty_ref


# --- ENS ------------------------------------------------------------------------------------------------------------


def initial_design(problem: Problem, count: int, seed: int) -> list[str]:
    """`count` distinct uniform random architectures (the same for every method with the same seed)."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    while len(chosen) < min(count, problem.space.size):
        name = problem.decode(problem.random_indices(rng))
        if name not in chosen:
            chosen.append(name)
    return chosen


def ens(
    objectives: Objectives,
    settings: SearchSettings,
    reference: tuple[float, float] | None = None,
    on_reference: Callable[[tuple[float, float]], None] | None = None,
) -> tuple[float, float]:
    """Run ENS until `settings.budget` architectures are in the log; returns the reference point used (`reference`
    if given, else one from the initial design and the settings' bounds)."""
    problem = objectives.problem
    settings.check(problem.space.size)
    torch.manual_seed(settings.seed)
    relaxed = settings.encoding == "relaxed"
    rng = np.random.default_rng(settings.seed)
    if relaxed:
        starts = []
        while len(starts) < settings.initial:
            x = rng.uniform(size=len(problem.cardinalities))
            if _cut(problem, x) not in {_cut(problem, s) for s in starts}:
                starts.append(x)
        for x in starts:
            objectives(_cut(problem, x), x=[float(v) for v in x])
    else:
        for name in initial_design(problem, settings.initial, settings.seed):
            objectives(name)
    if reference is None:
        drops = [r["psnr_drop"] for r in objectives.log.records]
        reference = reference_point(problem, drops, settings.max_drop, settings.max_penalty)
    if on_reference:
        on_reference(reference)
    while objectives.count < settings.budget:
        q = min(settings.batch, settings.budget - objectives.count)
        start = time.perf_counter()
        if relaxed:
            proposals = propose_relaxed(problem, objectives.log.records, q, reference, settings, rng)
        else:
            proposals = propose_categorical(problem, objectives.log.records, q, reference, settings)
        seconds = time.perf_counter() - start
        objectives.many([(name, {"proposal_seconds": round(seconds, 3), **extra}) for name, extra in proposals])
    return reference


def _observed(problem: Problem, records: list[dict[str, Any]]) -> tuple[Tensor, Tensor, Tensor]:
    X = torch.tensor([problem.encode(r["architecture"]) for r in records], dtype=torch.float64)
    drops = torch.tensor([r["psnr_drop"] for r in records], dtype=torch.float64)
    penalties = torch.tensor([r["penalty"] for r in records], dtype=torch.float64)
    return X, drops, penalties


def _fit(model: Any) -> None:
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))


def categorical_model(
    problem: Problem, records: list[dict[str, Any]], reference: tuple[float, float], settings: SearchSettings
) -> tuple[Any, Any, Tensor]:
    """The fitted GP of the PSNR drop over the categorical choices, and qLogNEHVI over it beside the exact penalty
    (a deterministic model); returns (gp, acquisition, observed X)."""
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.models import MixedSingleTaskGP, ModelList
    from botorch.models.deterministic import GenericDeterministicModel
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.sampling.index_sampler import IndexSampler
    from botorch.sampling.list_sampler import ListSampler

    X, drops, _ = _observed(problem, records)
    gp = MixedSingleTaskGP(X, drops.unsqueeze(-1), cat_dims=list(range(X.shape[-1])))
    _fit(gp)
    model = ModelList(gp, GenericDeterministicModel(lambda Z: -problem.penalty(Z).unsqueeze(-1), num_outputs=1))
    shape = torch.Size([settings.mc_samples])
    acquisition = qLogNoisyExpectedHypervolumeImprovement(
        model,
        ref_point=[reference[0], -reference[1]],
        X_baseline=X,
        prune_baseline=True,
        sampler=ListSampler(SobolQMCNormalSampler(shape), IndexSampler(shape)),  # a bare sampler fails on ModelList
    )
    return gp, acquisition, X


def propose_categorical(
    problem: Problem,
    records: list[dict[str, Any]],
    q: int,
    reference: tuple[float, float],
    settings: SearchSettings,
) -> list[tuple[str, dict[str, Any]]]:
    """The next `q` architectures: qLogNEHVI over the architectures that survive the screen."""
    from botorch.optim import optimize_acqf_discrete

    gp, acquisition, X = categorical_model(problem, records, reference, settings)
    _, drops, penalties = _observed(problem, records)
    candidates = problem.candidate_indices(X, seed=settings.seed * 100_003 + len(records)).to(torch.float64)
    survivors, screened = _screen(gp, problem, candidates, drops, penalties, reference, settings.max_candidates, q)
    chosen, _ = optimize_acqf_discrete(acquisition, q=q, choices=survivors, unique=True)
    extra = {"screen_kept": int(len(survivors)), "screen_empty": not screened}
    return [(problem.decode(row.long()), extra) for row in chosen]


def _screen(
    gp: Any,
    problem: Problem,
    candidates: Tensor,
    drops: Tensor,
    penalties: Tensor,
    reference: tuple[float, float],
    limit: int,
    q: int,
) -> tuple[Tensor, bool]:
    """Unevaluated architectures whose PSNR-drop upper bound (mean + 3 std, marginal posteriors in chunks: the joint
    over 34,560 would not fit) beats the front's attainment at their known penalty. If none does, the search has
    converged in the screen's eyes; the best margins are kept anyway so the budget is still spent usefully."""
    with torch.no_grad():
        bounds = []
        for chunk in candidates.split(4096):
            posterior = gp.posterior(chunk.unsqueeze(-2))
            mean, std = posterior.mean.reshape(-1), posterior.variance.clamp_min(0).sqrt().reshape(-1)
            bounds.append(mean + UCB_BETA * std)
        upper = torch.cat(bounds)
    cost = problem.penalty(candidates)
    # Attainment: the best drop already reached at a penalty no higher than the candidate's (or the reference).
    order = torch.argsort(penalties)
    best_so_far = torch.cummax(drops[order], dim=0).values
    position = torch.searchsorted(penalties[order].contiguous(), cost.contiguous(), right=True) - 1
    attained = torch.where(position >= 0, best_so_far[position.clamp_min(0)], torch.full_like(cost, -math.inf))
    margin = upper - attained.clamp_min(reference[0])
    margin[cost >= reference[1]] = -math.inf
    ranked = torch.argsort(margin, descending=True)
    passing = int((margin > 0).sum())
    keep = ranked[: max(min(passing, limit), q)]
    return candidates[keep], passing > 0


def _cut(problem: Problem, x: Any) -> str:
    """The paper's discretisation: coordinate i in [0, 1] picks choice floor(x * k_i) of stage i."""
    return problem.decode([min(int(v * k), k - 1) for v, k in zip(list(x), problem.cardinalities, strict=True)])


def propose_relaxed(
    problem: Problem,
    records: list[dict[str, Any]],
    q: int,
    reference: tuple[float, float],
    settings: SearchSettings,
    rng: np.random.Generator,
) -> list[tuple[str, dict[str, Any]]]:
    """The paper's encoding: GPs for both objectives over the continuous relaxation, qLogNEHVI maximised by
    gradient, then cut at the fixed thresholds. A cut that lands on an evaluated architecture is replaced by a
    random unevaluated one (recorded), since the relaxation cannot be told to avoid it."""
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler

    X = torch.tensor([_relaxed_x(problem, r) for r in records], dtype=torch.float64)
    drops = torch.tensor([r["psnr_drop"] for r in records], dtype=torch.float64).unsqueeze(-1)
    costs = -torch.tensor([r["penalty"] for r in records], dtype=torch.float64).unsqueeze(-1)
    models = [SingleTaskGP(X, drops), SingleTaskGP(X, costs)]
    for model in models:
        _fit(model)
    acquisition = qLogNoisyExpectedHypervolumeImprovement(
        ModelListGP(*models),
        ref_point=[reference[0], -reference[1]],
        X_baseline=X,
        prune_baseline=True,
        sampler=SobolQMCNormalSampler(torch.Size([settings.mc_samples])),
    )
    bounds = torch.stack([torch.zeros(X.shape[-1]), torch.ones(X.shape[-1])]).to(torch.float64)
    chosen, _ = optimize_acqf(acquisition, bounds=bounds, q=q, num_restarts=8, raw_samples=256, sequential=True)
    taken = {r["architecture"] for r in records}
    proposals = []
    for x in chosen:
        name, replaced = _cut(problem, x.tolist()), False
        while name in taken:
            x, replaced = torch.from_numpy(rng.uniform(size=X.shape[-1])), True
            name = _cut(problem, x.tolist())
        taken.add(name)
        proposals.append((name, {"x": [float(v) for v in x], "replaced_duplicate": replaced}))
    return proposals


def _relaxed_x(problem: Problem, record: dict[str, Any]) -> list[float]:
    """A record's point in the relaxation: the proposed x, or (for architectures from elsewhere) the bin centres."""
    if "x" in record:
        return list(record["x"])
    return [(i + 0.5) / k for i, k in zip(problem.encode(record["architecture"]), problem.cardinalities, strict=True)]


def _first_occurrences(keys: Tensor) -> Tensor:
    """Indices of the first occurrence of each distinct key, in order of appearance."""
    _, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return torch.sort(first).values
