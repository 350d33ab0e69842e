"""Process set-up (thread counts, a quiet toolchain) and work in parallel processes.

Lowering and small-model training are single-threaded at heart (Python-level export passes; small tensors that one
thread keeps busy), so N independent jobs (stage programs, surrogates) finish about N times faster in N processes
than in one process with N threads."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

Task = TypeVar("Task", bound=tuple)


def process_prologue(threads: int) -> None:
    """What every command does first: a quiet toolchain and `threads` intra-op threads for PyTorch (two cores:
    oversubscribed threads make torch 10-60x slower, so the count is always set, never left to the default)."""
    import torch

    quiet_toolchain()
    torch.set_num_threads(threads)


def set_threads(threads: int) -> None:
    """Thread counts of every runtime in this process: PyTorch's and ExecuTorch's (whose pool defaults to all
    cores), before anything is timed."""
    import torch

    torch.set_num_threads(threads)
    # The runtime's first use of its thread pool probes the CPU aloud (cpuinfo's lines on stderr), and a reset
    # says so ("Resetting threadpool to 1 threads"): neither is for the user.
    with native_stderr_silenced():
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)


def _worker_setup(parent: int) -> None:
    import torch

    torch.set_num_threads(1)  # N workers on N cores: more threads each would only oversubscribe
    quiet_toolchain()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker when its parent is gone: a parent killed outright (SIGKILL, `kill PID`) cannot shut its pool
    down, and its workers would otherwise keep a core busy on a task nobody will collect."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


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
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), mp_context=context, initializer=_worker_setup, initargs=(os.getpid(),)
    )
    futures = {pool.submit(function, *task): task for task in tasks}
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        # Ctrl-C or a failed task: the other workers stop now instead of finishing tasks that may run for an hour
        # (every task resumes from its own checkpoint next time). The pool has no public way to stop a running task.
        for process in list((pool._processes or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def quiet_toolchain() -> None:
    """torch.export, ExecuTorch and torchao warn about their own internals on every lowering (deprecations, optional
    CUDA kernels that a CPU machine cannot load): none of it is actionable for a user of this command."""
    import logging
    import warnings

    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    # The search's libraries warn about fits and candidate pools on every iteration; the trial log records outcomes.
    warnings.filterwarnings("ignore", module=r"(botorch|gpytorch|linear_operator|pymoo)(\.|$)")
    for name in ("torchao", "torch._export", "torch.export", "torch.onnx", "torch.utils._pytree", "executorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # torch's logging configuration resets the levels of the loggers it registers ("torch.onnx" among them) when
    # the exporter loads; a child's own level stays: its "torchvision is not installed" lines, one per op it skips.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Within the block, what native code writes to the process's stderr (file descriptor 2) goes nowhere:
    ExecuTorch's thread pool probes the CPU when the first method loads and prints each file it could not read
    (cpuinfo_utils.cpp), which Python's warning and logging filters cannot reach."""
    import sys

    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def distributed_group(device: torch.device | None = None) -> Iterator[int]:
    """Inside torchrun, join the process group for the block and leave it after; yields this process's rank (0
    outside torchrun). The backend follows the device the ranks' tensors live on (nccl for a GPU, gloo for the
    CPU), not whether the machine has a GPU: `--device cpu` on a GPU server trains over gloo."""
    import torch

    from edgeens.devices import process_group_backend, resolve_device

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0
        return
    device = device if device is not None else resolve_device("auto")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # nccl's collectives run on the current GPU: this rank's
    torch.distributed.init_process_group(process_group_backend(device))
    try:
        yield torch.distributed.get_rank()
    finally:
        torch.distributed.destroy_process_group()
