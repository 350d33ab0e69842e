from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace, preset_space
from edgeens.profile.table import heuristic_penalty
from edgeens.search.baselines import nsga2, random_search, rule_based
from edgeens.search.ens import Objectives, Problem, SearchSettings, TrialLog, ens, reference_point
from edgeens.search.evaluate import SearchError
from edgeens.search.loop import compare_methods
from edgeens.search.pareto import hypervolume

runner = CliRunner()
SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


def synthetic(problem: Problem, seed: int = 1):
    """A PSNR drop that is additive over stages, with an interaction between neighbours (like the spec's problem)."""
    weights = np.random.default_rng(seed).uniform(0.2, 1.0, size=(8, max(problem.cardinalities)))

    def evaluate(name: str) -> dict:
        index = problem.encode(name)
        drop = -0.5 * sum(weights[i, j] * (1 + 0.3 * j) for i, j in enumerate(index) if j > 0)
        drop -= 0.2 * sum(1 for a, b in zip(index, index[1:], strict=False) if a and b)
        return {"psnr": 30 + drop, "psnr_drop": drop, "seconds": 0.0}

    return evaluate


def tiny_problem() -> Problem:
    space = preset_space("tiny")
    return Problem(space, heuristic_penalty(space))


def test_penalty_is_the_exact_sum_of_stage_costs() -> None:
    problem = tiny_problem()
    costs = heuristic_penalty(problem.space)
    name = "R-M2-R-M4-M2-R-M2-R"
    expected = sum(costs[s.name][t] for s, t in zip(problem.space.stages, name.split("-"), strict=True))
    assert float(problem.penalty(torch.tensor(problem.encode(name)))) == pytest.approx(expected)
    assert problem.decode(problem.encode(name)) == name
    assert len(set(problem.flat(problem.all_indices()).tolist())) == problem.space.size == 384


def test_ens_spends_its_budget_on_distinct_architectures_and_beats_random(tmp_path) -> None:
    problem = tiny_problem()
    evaluate = synthetic(problem)
    every = [evaluate(problem.decode(r))["psnr_drop"] for r in problem.all_indices()]
    reference = reference_point(problem, every)
    costs = problem.penalty(problem.all_indices().double()).numpy()
    truth = hypervolume(np.stack([every, costs], 1), reference)
    found = {}
    for method in ("ens", "random"):
        log = TrialLog(tmp_path / f"{method}.jsonl")
        objectives = Objectives(problem, evaluate, log, method)
        if method == "ens":
            ens(objectives, SearchSettings(budget=40, initial=12, batch=4), reference)
        else:
            random_search(objectives, 40, seed=0)
        names = [r["architecture"] for r in log.records]
        assert len(names) == len(set(names)) == 40
        assert names[:12] == [r["architecture"] for r in TrialLog(tmp_path / "ens.jsonl").records[:12]]  # same start
        found[method] = hypervolume(np.array([(r["psnr_drop"], r["penalty"]) for r in log.records]), reference) / truth
    assert found["ens"] > found["random"] and found["ens"] >= 0.95, found


def test_a_space_too_large_to_enumerate_is_screened_by_sample_and_neighbourhood(tmp_path) -> None:
    from edgeens.models.space import parse_families
    from edgeens.search.ens import ENUMERATE_LIMIT

    space = preset_space("tiny", parse_families("M,S,G"))
    assert space.size > ENUMERATE_LIMIT
    problem = Problem(space, heuristic_penalty(space))
    seen = torch.tensor([problem.encode("R-R-R-R-R-R-R-R"), problem.encode("G1-R-S2-M4-R-R-G2-R")])
    candidates = problem.candidate_indices(seen, seed=0)
    names = {problem.decode(row) for row in candidates}
    assert "G1-R-S2-M4-R-R-G2-G1" in names and "R-R-R-R-R-R-R-G2" in names  # one-stage changes of both
    assert "R-R-R-R-R-R-R-R" not in names and len(names) == len(candidates) > 19_000
    evaluate = synthetic(problem)
    volumes = {}
    for method in ("ens", "random"):
        log = TrialLog(tmp_path / f"{method}.jsonl")
        objectives = Objectives(problem, evaluate, log, method)
        if method == "ens":
            ens(objectives, SearchSettings(budget=36, initial=12, batch=4))
        else:
            random_search(objectives, 36, seed=0)
        volumes[method] = np.array([(r["psnr_drop"], r["penalty"]) for r in log.records])
    reference = (float(min(v[:, 0].min() for v in volumes.values())) - 0.1, problem.max_penalty + 0.1)
    ens_volume, random_volume = (hypervolume(volumes[m], reference) for m in ("ens", "random"))
    assert ens_volume > random_volume, (ens_volume, random_volume)


def test_the_paper_encoding_runs_and_never_repeats(tmp_path) -> None:
    problem = tiny_problem()
    log = TrialLog(tmp_path / "relaxed.jsonl")
    ens(
        Objectives(problem, synthetic(problem), log, "relaxed"),
        SearchSettings(budget=14, initial=6, batch=4, encoding="relaxed"),
    )
    names = [r["architecture"] for r in log.records]
    assert len(names) == len(set(names)) == 14 and all(len(r["x"]) == 8 for r in log.records)


def test_baselines_use_the_same_budget(tmp_path) -> None:
    problem = tiny_problem()
    evaluate = synthetic(problem)
    log = TrialLog(tmp_path / "nsga2.jsonl")
    nsga2(Objectives(problem, evaluate, log, "nsga2"), budget=50, seed=0)
    assert len(log.records) == len({r["architecture"] for r in log.records}) == 50
    rule = TrialLog(tmp_path / "rule.jsonl")
    rule_based(Objectives(problem, evaluate, rule, "rule"))
    assert [r["architecture"] for r in rule.records] == ["M2-R-M2-R-M2-R-M2-R", "R-M2-R-M4-R-M2-R-M2"]


def test_compare_reports_fractions_of_the_true_front(tmp_path) -> None:
    problem = tiny_problem()
    settings = SearchSettings(budget=24, initial=8, batch=4)
    result = compare_methods(
        problem, synthetic(problem), tmp_path, settings, seeds=2, exhaustive=True, methods=("ens", "random", "rule")
    )
    assert result["best_is_true_front"] and len(result["curves"]["ens"]) == 2
    for curves in result["curves"].values():
        assert all(0 < c[-1] <= result["best_hypervolume"] * (1 + 1e-9) for c in curves)
    assert len(TrialLog(tmp_path / "compare" / "all.jsonl").records) == 384
    assert (tmp_path / "compare.json").is_file()


def test_a_batch_goes_to_the_batch_evaluator_and_is_logged_once(tmp_path) -> None:
    problem = tiny_problem()
    evaluate = synthetic(problem)
    batches = []

    def batch_evaluate(names):
        batches.append(list(names))
        for name in reversed(names):  # finishing out of order is fine
            yield name, evaluate(name)

    log = TrialLog(tmp_path / "t.jsonl")
    objectives = Objectives(problem, evaluate, log, "ens", batch_evaluate=batch_evaluate)
    objectives("R-R-R-R-R-R-R-R")
    objectives.many([("R-R-R-R-R-R-R-R", {}), ("M2-R-R-R-R-R-R-R", {"q": 1}), ("R-M2-R-R-R-R-R-R", {"q": 1})])
    assert batches == [["M2-R-R-R-R-R-R-R", "R-M2-R-R-R-R-R-R"]]
    assert [r["architecture"] for r in log.records] == ["R-R-R-R-R-R-R-R", "R-M2-R-R-R-R-R-R", "M2-R-R-R-R-R-R-R"]
    assert all(r["q"] == 1 for r in log.records[1:])


def test_a_cut_off_last_line_is_dropped_and_appends_continue(tmp_path) -> None:
    path = tmp_path / "trials.jsonl"
    full = {"psnr": 30.0, "penalty": 1.0}
    path.write_text(json.dumps({"architecture": "R-R", "psnr_drop": 0, **full}) + "\n" + '{"architecture": "M2-')
    log = TrialLog(path)
    assert [r["architecture"] for r in log.records] == ["R-R"]
    log.append({"architecture": "M2-R", "psnr_drop": -1, **full})
    assert [json.loads(line)["architecture"] for line in path.read_text().splitlines()] == ["R-R", "M2-R"]


def test_settings_are_checked_before_anything_runs() -> None:
    with pytest.raises(SearchError, match="smaller than the initial design"):
        SearchSettings(budget=8, initial=16).check(384)
    with pytest.raises(SearchError, match="unknown encoding"):
        SearchSettings(encoding="onehot").check(384)


# --- the command, on a real (small) teacher and pool ------------------------------------------------------------


def search_args(folder, out, *extra: str) -> list[str]:
    return [
        "search",
        "--teacher",
        str(folder / "teacher.safetensors"),
        "--pool",
        str(folder / "pool"),
        "--penalty",
        "heuristic",
        "--out",
        str(out),
        *extra,
    ]


def test_search_command_writes_front_knee_and_plot(small_run, tmp_path) -> None:
    out = tmp_path / "search"
    result = runner.invoke(app, search_args(small_run, out, "--budget", "14", "--initial", "6", "--top-k", "3"))
    assert result.exit_code == 0, result.output
    front = json.loads((out / "front.json").read_text())
    assert front["evaluations"] == 14 and len(front["candidates"]) == 3
    assert "farthest from the straight line" in front["knee_method"]
    assert (out / "pareto.png").stat().st_size > 10_000
    again = runner.invoke(app, search_args(small_run, out, "--budget", "14", "--initial", "6", "--top-k", "3"))
    assert again.exit_code == 0 and len(TrialLog(out / "trials.jsonl").records) == 14  # nothing evaluated twice
    extend = search_args(small_run, out, "--budget", "18", "--initial", "6", "--top-k", "3", "--jobs", "2")
    longer = runner.invoke(app, extend)  # the extra batch is evaluated by 2 worker processes
    assert longer.exit_code == 0, longer.output
    names = [r["architecture"] for r in TrialLog(out / "trials.jsonl").records]
    assert len(names) == len(set(names)) == 18  # extended, not restarted
    other = runner.invoke(app, search_args(small_run, out, "--budget", "14", "--initial", "6", "--seed", "3"))
    assert other.exit_code == 2 and "other settings" in " ".join(other.output.split())


def test_a_search_killed_mid_way_resumes_without_losing_or_repeating(small_run, tmp_path) -> None:
    out = tmp_path / "search"
    command = [sys.executable, "-m", "edgeens", *search_args(small_run, out, "--budget", "24", "--initial", "8")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials = out / "trials.jsonl"
    deadline = time.time() + 300
    # Killed after the initial design and at least one model-guided batch, with batches still to come.
    while time.time() < deadline and (not trials.is_file() or len(trials.read_text().splitlines()) < 12):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = len(TrialLog(trials).records)
    assert 12 <= killed_at < 24
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    names = [json.loads(line)["architecture"] for line in trials.read_text().splitlines()]
    assert len(names) == len(set(names)) == 24


def test_bad_search_inputs_fail_before_any_evaluation(small_run, tmp_path) -> None:
    from edgeens.profile.table import Latency, LatencyTable

    space = SearchSpace(Restormer(**SMALL).config)
    table = LatencyTable(
        "host",
        "executorch-xnnpack",
        128,
        128,
        Restormer(**SMALL).config.to_dict(),
        Latency(1, 1, 1, 1),
        {s.name: {c: Latency(1, 1, 1, 1) for c in s.choices} for s in space.stages},
    )
    other_size = table.save(tmp_path / "profiles")
    tiny_table = "profiles/host--executorch-xnnpack--256x256--tiny.json"
    broken_pool = tmp_path / "pool"
    shutil.copytree(small_run / "pool", broken_pool)
    manifest = json.loads((small_run / "pool" / "manifest.json").read_text())
    manifest["surrogates"].pop(next(iter(manifest["surrogates"])))
    (broken_pool / "manifest.json").write_text(json.dumps(manifest))
    base = ["search", "--teacher", str(small_run / "teacher.safetensors"), "--out", str(tmp_path / "s")]
    cases = [
        ([*base, "--pool", str(small_run / "pool"), "--table", str(other_size)], "measured at 128x128"),
        ([*base, "--pool", str(small_run / "pool"), "--table", tiny_table], "another search space"),
        ([*base, "--pool", str(small_run / "pool")], "needs a latency table"),
        ([*base, "--pool", str(broken_pool), "--penalty", "heuristic"], "lacks 1 surrogate"),
        (
            [*base, "--pool", str(small_run / "pool"), "--penalty", "heuristic", "--budget", "5"],
            "smaller than the initial",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
    assert not (tmp_path / "s" / "trials.jsonl").exists()


def test_a_penalty_budget_bounds_the_search_and_picks_the_best_inside_it(tmp_path) -> None:
    from edgeens.search.loop import summarize

    problem = tiny_problem()
    budget = problem.min_penalty + (problem.max_penalty - problem.min_penalty) / 3
    assert reference_point(problem, [-1.0, 0.0], max_penalty=budget)[1] == budget
    with pytest.raises(SearchError, match="below the cheapest architecture"):
        reference_point(problem, [-1.0, 0.0], max_penalty=problem.min_penalty)
    log = TrialLog(tmp_path / "budget.jsonl")
    settings = SearchSettings(budget=24, initial=8, batch=4)
    ens(Objectives(problem, synthetic(problem), log, "ens"), dataclasses.replace(settings, max_penalty=budget))
    proposed = [r["penalty"] for r in log.records[8:]]
    assert sum(p <= budget for p in proposed) >= 0.75 * len(proposed)  # the search spends itself inside the budget
    front = summarize(log.records, reference_point(problem, [0.0], max_penalty=budget), 3, budget)
    inside = sorted((r for r in log.records if r["penalty"] <= budget), key=lambda r: -r["psnr_drop"])
    assert front["selection"] == "budget"
    assert [c["architecture"] for c in front["candidates"]] == [r["architecture"] for r in inside[:3]]
