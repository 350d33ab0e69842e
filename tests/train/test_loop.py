"""The training loop's helpers for trainings that run in other processes: how far a log has come, and the watch
that reports it (bars on a terminal, a line now and then in a log file)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from rich.console import Console

from edgeens.train import loop
from edgeens.train.loop import logged_iteration, watch_trainings


def write_log(folder: Path, iterations: range, tail: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"iteration": i, "loss": 0.01, "seconds": i / 10}) for i in iterations]
    lines.append(json.dumps({"iteration": iterations[-1], "validation_psnr": 30.0}))
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n" + tail)


def test_the_logged_iteration_is_the_last_whole_line_of_the_log_and_zero_without_one(tmp_path) -> None:
    assert logged_iteration(tmp_path / "missing") == 0
    write_log(tmp_path / "long", range(1, 851))  # longer than the tail that is read
    assert (tmp_path / "long" / "log.jsonl").stat().st_size > 4096
    assert logged_iteration(tmp_path / "long") == 850
    write_log(tmp_path / "cut", range(1, 11), tail='{"iteration": 11, "lo')  # a line being written
    assert logged_iteration(tmp_path / "cut") == 10
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text("")
    assert logged_iteration(tmp_path / "empty") == 0


def test_the_watch_says_each_trainings_progress_now_and_then_when_output_is_a_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(loop, "get_console", lambda: Console(file=io.StringIO()))  # not a terminal
    write_log(tmp_path / "a", range(1, 851))
    write_log(tmp_path / "c", range(1, 6001))
    said: list[str] = []
    trainings = [("MambaIR only", tmp_path / "a", 6000), ("50/50", tmp_path / "b", 6000), ("ENS", tmp_path / "c", 6000)]
    with watch_trainings(trainings, said.append, every=0.05):
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
    assert said, "no progress line within 10 s"
    assert said[0] == "training: MambaIR only 850/6000, 50/50 waiting, ENS done"
    count = len(said)
    time.sleep(0.2)
    assert len(said) == count  # the watch stopped with the block


def test_without_a_say_the_watch_prints_each_line_whole_into_the_file(tmp_path, monkeypatch) -> None:
    log_file = io.StringIO()
    monkeypatch.setattr(loop, "get_console", lambda: Console(file=log_file, width=80))
    labels = ["teacher, fine-tuned", "MambaIR only", "50/50 (MambaIR in every other stage)", "random hybrid", "ENS"]
    for label in labels:
        write_log(tmp_path / label, range(1, 2001))
    with watch_trainings([(label, tmp_path / label, 6000) for label in labels], every=0.05):
        time.sleep(0.3)
    lines = log_file.getvalue().splitlines()
    assert lines and all(line.startswith("training: ") and line.endswith("ENS 2000/6000") for line in lines)


def test_the_watch_draws_one_bar_per_training_on_a_terminal(tmp_path, monkeypatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(loop, "get_console", lambda: Console(file=screen, force_terminal=True, width=100))
    write_log(tmp_path / "a", range(1, 51))
    said: list[str] = []
    with watch_trainings([("teacher, fine-tuned", tmp_path / "a", 6000)], said.append, every=0.05):
        write_log(tmp_path / "a", range(1, 4501))  # the bar follows the log
        time.sleep(0.5)
    assert "teacher, fine-tuned" in screen.getvalue()
    assert "4500/6000" in screen.getvalue()
    assert not said  # bars instead of lines
