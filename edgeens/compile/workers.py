"""Lowering in parallel: export and lowering are single-threaded Python, so N independent programs build about N
times faster in N processes (each lowering of a paper-size program takes minutes and under 2 GiB)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Task = TypeVar("Task", bound=tuple)


def _worker_setup() -> None:
    import torch

    from edgeens.compile.artifact import quiet_toolchain

    torch.set_num_threads(1)  # N workers on N cores: more threads each would only oversubscribe
    quiet_toolchain()


def run_in_processes(function: Callable[..., Any], tasks: Sequence[Task], jobs: int = 1) -> Iterator[tuple[Task, Any]]:
    """Yield (task, function(*task)) for every task as each finishes: in this process with `jobs` 1, else in `jobs`
    spawned worker processes (`function` and the task's arguments must pickle). A failing task raises here after
    the tasks already yielded, so a caller that records each result as it arrives loses no finished work.
    As with any spawned pool, a script that calls this with `jobs` > 1 needs an `if __name__ == "__main__":` guard:
    the workers import the script."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, function(*task)
        return
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's torch thread pools
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context, initializer=_worker_setup) as pool:
        futures = {pool.submit(function, *task): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
