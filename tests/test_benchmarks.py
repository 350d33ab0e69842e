"""The GPU checks of benchmarks/ run on a CPU too (on smaller shapes), so what a lent GPU machine runs is known to
work before it starts: the fused-scan check's comparison, and the training-speed benchmark's cases and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_the_scan_check_finds_chunked_and_reference_scans_agree_in_output_and_gradients(tmp_path) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "fused_scan.py"), "--device", "cpu", "--against", "reference"]
    cmd += ["--length", "64", "--channels", "4", "--json", str(tmp_path / "scan.json")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0 and "agree" in result.stdout, result.stdout + result.stderr
    differences = json.loads((tmp_path / "scan.json").read_text())["differences"]
    assert set(differences) == {"output", *(f"grad {k}" for k in ("u", "delta", "A", "B", "C", "D", "delta_bias"))}
    assert all(v["relative"] < 1e-4 for v in differences.values())


def test_the_scan_check_refuses_the_fused_kernel_without_a_gpu() -> None:
    cmd = [sys.executable, str(BENCHMARKS / "fused_scan.py"), "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 1 and "runs on a GPU" in result.stderr


def test_the_training_benchmark_times_teacher_and_distillation_steps(tmp_path) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "train.py"), "--device", "cpu", "--presets", "tiny", "--batch", "1"]
    cmd += ["--patch", "16", "--seconds", "0", "--iterations", "3", "--json", str(tmp_path / "train.json")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["device"] == "cpu" and record["precision"] == "fp32" and record["threads"] == 1
    assert [row["task"] for row in record["rows"]] == ["teacher", "distill M (encoder1)"]
    assert all(row["iterations"] == 3 and row["iterations_per_s"] > 0 and row["peak_gib"] > 0 for row in record["rows"])
