"""Cost of one ENS iteration (GP fit plus acquisition) on the paper preset's space at 200 observations.

Issue target: under 5 s on 2 cores. The observations are 200 distinct random architectures with a synthetic PSNR drop
(additive per stage plus a neighbour interaction and noise, as in spec/search.md's problem.py): the iteration's cost
depends on the number of observations and on the space, not on what the PSNR values are. The penalty is the paper
preset's host latency table if it exists, else the paper's heuristic. In the same run, the baseline is what BoTorch
itself uses for a categorical space of this size (`optimize_acqf_discrete_local_search`, raw 1024 / 10 restarts,
the settings spec/search.md timed), on the same fitted model and acquisition function.

The paper's space (family M) has 34,560 architectures and is screened whole; with `--families M,L,S,G` it has
691,488,000, and the screen sees a random sample plus every one-stage change of the observations.

    python benchmarks/search.py                       # q = 1 and q = 4, 3 repeats each
    python benchmarks/search.py --families M,L,S,G    # the space with every built-in family
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeens.files import now
from edgeens.models.space import parse_families, preset_space
from edgeens.profile.table import LatencyTable, calibrated_penalty, heuristic_penalty
from edgeens.search.ens import Problem, SearchSettings, categorical_model, propose_categorical, reference_point

PROFILES = Path("profiles")


def observations(problem: Problem, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.1, 0.6, size=(8, max(problem.cardinalities)))
    rows: dict[str, list[int]] = {}
    while len(rows) < count:
        row = problem.random_indices(rng)
        rows[problem.decode(row)] = row
    records = []
    for row in rows.values():
        drop = -sum(weights[i, j] * (1 + 0.3 * j) for i, j in enumerate(row) if j > 0)
        drop -= 0.15 * sum(1 for a, b in zip(row, row[1:], strict=False) if a and b) - rng.normal(0, 0.05)
        name = problem.decode(row)
        records.append({"architecture": name, "psnr_drop": drop, "penalty": float(problem.penalty(torch.tensor(row)))})
    return records


def local_search_iteration(problem: Problem, records: list[dict], q: int, reference, settings: SearchSettings) -> float:
    """BoTorch's own choice for this space: the same GP and qLogNEHVI, optimised by discrete local search."""
    from botorch.optim import optimize_acqf_discrete_local_search

    start = time.perf_counter()
    _, acquisition, X = categorical_model(problem, records, reference, settings)
    choices = [torch.arange(k, dtype=torch.float64) for k in problem.cardinalities]
    optimize_acqf_discrete_local_search(
        acquisition, discrete_choices=choices, q=q, X_avoid=X, raw_samples=1024, num_restarts=10
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", default="M", help="surrogate families of the space (M: the paper's)")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = preset_space("paper", parse_families(args.families))
    table = PROFILES / f"host--executorch-xnnpack--256x256--paper{space.name_suffix}.json"
    if table.is_file():
        penalty, source = calibrated_penalty(LatencyTable.load(table)), str(table)
    else:
        penalty, source = heuristic_penalty(space), "heuristic"
    problem = Problem(space, penalty)
    records = observations(problem, args.observations)
    reference = reference_point(problem, [r["psnr_drop"] for r in records])
    settings = SearchSettings(budget=args.observations + 4, initial=16)
    rows = []
    lines = [
        f"# one ENS iteration on the paper space ({space.size} architectures) at {args.observations} observations",
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
        f"penalty: {source}, median of {args.repeats}",
        f"{'q':>2} {'edgeens s':>10} {'local search s':>15} {'ratio':>7} {'kept by screen':>15}",
    ]
    for q in (1, 4):
        ours, theirs, kept = [], [], 0
        for repeat in range(args.repeats):
            torch.manual_seed(repeat)
            start = time.perf_counter()
            proposals = propose_categorical(problem, records, q, reference, replace(settings, seed=repeat))
            ours.append(time.perf_counter() - start)
            kept = proposals[0][1]["screen_kept"]
            torch.manual_seed(repeat)
            theirs.append(local_search_iteration(problem, records, q, reference, settings))
        row = {
            "q": q,
            "edgeens_s": float(np.median(ours)),
            "local_search_s": float(np.median(theirs)),
            "screen_kept": kept,
            "samples_edgeens": ours,
            "samples_local_search": theirs,
        }
        rows.append(row)
        lines.append(
            f"{q:>2} {row['edgeens_s']:>10.2f} {row['local_search_s']:>15.2f} "
            f"{row['local_search_s'] / row['edgeens_s']:>6.1f}x {kept:>15}"
        )
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"search{space.name_suffix}"
    (args.results / f"{stem}.txt").write_text(text + "\n")
    meta = {"threads": args.threads, "penalty": source, "observations": args.observations, "date": now()}
    meta["families"] = args.families
    (args.results / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
