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


def test_a_failure_or_ctrl_c_does_not_wait_for_the_other_workers_long_tasks() -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(ZeroDivisionError):  # one task fails at once while the other would sleep for a minute
        list(run_in_processes(_sleep_or_divide, [(60.0, 1), (0.0, 0)], jobs=2))
    assert time.perf_counter() - start < 30  # spawning two workers takes seconds; the sleeper is stopped, not awaited


def _sleep_or_divide(seconds: float, divisor: int) -> float:
    import time

    time.sleep(seconds)
    return 1 / divisor


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` and that run a spawned worker (from /proc)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_workers_end_when_their_parent_is_killed_outright(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import time\nfrom edgeens.workers import run_in_processes\n"
        "if __name__ == '__main__':\n    list(run_in_processes(time.sleep, [(300,), (300,)], jobs=2))\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.time() + 60
        while len(_children(parent.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert len(workers) == 2
        time.sleep(1.0)  # the workers' initializer has started their watch
        parent.send_signal(signal.SIGKILL)  # no chance to shut the pool down
        parent.wait()
        deadline = time.time() + 30
        while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers), "orphaned workers kept running"
    finally:
        parent.kill()


def test_native_writes_to_stderr_go_nowhere_inside_the_block_and_stderr_works_after(tmp_path) -> None:
    import subprocess
    import sys

    script = (
        "import os, sys\nfrom edgeens.workers import native_stderr_silenced\n"
        "with native_stderr_silenced():\n    os.write(2, b'native noise\\n')\n"
        "print('python after', file=sys.stderr)\nos.write(2, b'native after\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.splitlines() == ["python after", "native after"], result.stderr


def test_loading_an_executorch_program_prints_nothing_on_stderr(tmp_path) -> None:
    """ExecuTorch's thread pool probes the CPU on the first method load and prints what it could not read."""
    import subprocess
    import sys

    script = (
        "import torch\nfrom edgeens.workers import quiet_toolchain\nquiet_toolchain()\n"
        "from edgeens.compile.executorch import lower_to_executorch, run_program\n"
        "model = torch.nn.Conv2d(3, 3, 3, padding=1)\nx = torch.rand(1, 3, 8, 8)\n"
        "out = run_program(lower_to_executorch(model, (x,)).buffer, (x,))[0]\n"
        "print(float((out - model(x)).abs().max()) < 1e-5)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stdout + result.stderr
    assert "cpuinfo" not in result.stderr, result.stderr
