"""The trial log keeps every valid record whatever else the file holds, and one folder has one writer."""

from __future__ import annotations

import json

import pytest

from edgeens.files import FolderBusyError, folder_lock
from edgeens.models.space import preset_space
from edgeens.profile.table import heuristic_penalty
from edgeens.search.ens import Problem, SearchSettings, TrialLog, architecture_check
from edgeens.search.loop import run_search


def record(architecture: str, drop: float = -0.5) -> dict:
    return {"architecture": architecture, "psnr": 30 + drop, "psnr_drop": drop, "penalty": 1.0, "method": "ens"}


def problem() -> Problem:
    space = preset_space("tiny")
    return Problem(space, heuristic_penalty(space))


GOOD = ["R-R-R-R-R-R-R-R", "M2-R-R-R-R-R-R-R", "R-M2-R-R-R-R-R-R"]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"\n", "blank line"),
        (b"{garbage\n", "not JSON"),
        (b'{"architecture": "R-M2-R-R-R-R-R-R", "psnr": 30, "psnr_drop": -1.0, "pen\n', "not JSON"),  # torn
        (json.dumps(record("Z9-Q")).encode() + b"\n", "not in the search space"),
        (json.dumps({"architecture": "R-R-M2-R-R-R-R-R", "psnr": 30.0, "penalty": 1.0}).encode() + b"\n", "psnr_drop"),
        (json.dumps(record(GOOD[0])).encode() + b"\n", "repeats"),
    ],
)
def test_a_bad_line_in_the_middle_loses_no_record_after_it(tmp_path, bad: bytes, reason: str) -> None:
    path = tmp_path / "trials.jsonl"
    lines = [json.dumps(record(a)).encode() + b"\n" for a in GOOD]
    path.write_bytes(lines[0] + bad + lines[1] + lines[2])
    log = TrialLog(path, check=architecture_check(problem()))
    assert [r["architecture"] for r in log.records] == GOOD
    assert len(log.rejected) == 1 and reason in log.rejected[0][2] and log.rejected[0][0] == 2
    assert path.read_bytes() == lines[0] + bad + lines[1] + lines[2]  # reading changes nothing
    log.append(record("R-R-M2-R-R-R-R-R"))
    again = TrialLog(path, check=architecture_check(problem()))
    assert [r["architecture"] for r in again.records] == [*GOOD, "R-R-M2-R-R-R-R-R"] and not again.rejected
    kept = [json.loads(line) for line in (tmp_path / "trials.rejected.jsonl").read_text().splitlines()]
    assert kept[0]["line"] == 2 and reason in kept[0]["reason"]  # nothing is lost


def test_a_torn_last_line_is_dropped_before_the_next_append(tmp_path) -> None:
    path = tmp_path / "trials.jsonl"
    path.write_bytes(json.dumps(record(GOOD[0])).encode() + b"\n" + b'{"architecture": "M2-R')
    log = TrialLog(path)
    assert [r["architecture"] for r in log.records] == GOOD[:1] and not log.rejected
    log.append(record(GOOD[1]))
    assert [r["architecture"] for r in TrialLog(path).records] == GOOD[:2]


def test_a_second_search_on_the_same_folder_stops_at_once(tmp_path) -> None:
    calls = []

    def evaluate(architecture: str) -> dict:
        calls.append(architecture)
        return {"psnr": 30.0, "psnr_drop": -0.1, "seconds": 0.0}

    with folder_lock(tmp_path / "search", "a test holding it"):
        with pytest.raises(FolderBusyError, match="a test holding it"):
            run_search(problem(), evaluate, tmp_path / "search", SearchSettings(budget=4, initial=4), {"x": 1})
    assert calls == []
    with folder_lock(tmp_path / "search", "again"):  # released: the folder can be taken again
        pass
