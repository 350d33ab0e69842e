from __future__ import annotations

import operator

import pytest

from edgeens.workers import run_in_processes


def test_parallel_results_match_serial_and_pair_with_their_tasks() -> None:
    tasks = [(i, 10 * i) for i in range(5)]
    serial = dict(run_in_processes(operator.add, tasks, jobs=1))
    parallel = dict(run_in_processes(operator.add, tasks, jobs=2))
    assert serial == parallel == {(i, 10 * i): 11 * i for i in range(5)}


def test_a_failing_task_raises_in_the_caller() -> None:
    with pytest.raises(ZeroDivisionError):
        list(run_in_processes(operator.truediv, [(1, 1), (1, 0)], jobs=2))
    with pytest.raises(ValueError, match="at least 1"):
        list(run_in_processes(operator.add, [(1, 1)], jobs=0))
