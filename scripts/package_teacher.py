"""Package a finished teacher run as the embedded default teacher: float16 weights (git keeps them under 5 MiB;
they load into a float32 model), a JSON with the exact command, recipe and scores, and the training curve.

    python scripts/package_teacher.py RUN_DIR "COMMAND THAT TRAINED IT"

A run warm-started (`edgeens teacher --init`) from the embedded teacher continues its record: the asset's JSON and
training log as they were become the first stage ("warm_started_from", with the commit that holds those weights),
and the log is joined, the new run's iterations counted on from the old run's last one.

Writes edgeens/assets/teacher-tiny-gaussian25.{safetensors,json} and reports/teacher/{curve.png,log.jsonl}. Scores:
validation PSNR on the catalogue's whole val photos (float32 and float16 weights), test PSNR on its whole test
photos beside scikit-image's NLM on the same pairs (the figure the README quotes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from edgeens.classical import classical_restorer
from edgeens.data.photos import degraded_pairs
from edgeens.metrics import psnr
from edgeens.models import Restormer
from edgeens.report.training import plot_training_curve
from edgeens.restore import load_restorer, restore_array
from edgeens.train.teacher import validation_psnr

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "edgeens" / "assets" / "teacher-tiny-gaussian25"
REPORT = ROOT / "reports" / "teacher"


def main(run_dir: Path, command: str) -> None:
    torch.set_num_threads(1)
    summary = json.loads((run_dir / "teacher.json").read_text())
    if not summary.get("finished"):
        raise SystemExit(f"{run_dir} holds no finished teacher")
    previous, log = None, (run_dir / "log.jsonl").read_text()
    if summary["recipe"].get("init_weights"):
        previous = json.loads(ASSET.with_suffix(".json").read_text())
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", str(ASSET.with_suffix(".safetensors"))],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        previous["weights_at_commit"] = commit.stdout.strip()
        offset = previous["iterations"] + previous.get("warm_started_from", {}).get("iterations", 0)
        shifted = []
        for line in log.splitlines():
            entry = json.loads(line)
            shifted.append(json.dumps({**entry, "iteration": entry["iteration"] + offset}))
        log = (REPORT / "log.jsonl").read_text() + "".join(line + "\n" for line in shifted)
    weights = load_file(str(run_dir / "teacher.safetensors"))
    half = {k: v.half().contiguous() for k, v in weights.items()}
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(ASSET.with_suffix(".safetensors")))
    model32 = Restormer.from_checkpoint(run_dir / "teacher.safetensors").eval()
    model16 = Restormer.from_checkpoint(ASSET.with_suffix(".safetensors")).eval()
    val = list(degraded_pairs("val", "gaussian_noise", 25.0).values())
    test = degraded_pairs("test", "gaussian_noise", 25.0)
    nlm = classical_restorer("nlm", 25.0)
    eager = load_restorer(ASSET.with_suffix(".safetensors"))
    test_teacher = [psnr(restore_array(eager, lq, 0), gt) for lq, gt in test.values()]
    test_nlm = [psnr(restore_array(nlm, lq, 0), gt) for lq, gt in test.values()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    record = {
        "command": command,
        "code": f"trained at commit {commit.stdout.strip()} (resumed across restarts from its checkpoints)",
        "iterations": summary["iterations"],
        "ranks": summary["ranks"],
        "threads_per_rank": summary["threads"],
        "config": summary["config"],
        "recipe": summary["recipe"],
        "data": "photo catalogue (edgeens/data/photos.py): train split, Gaussian noise sigma 25",
        "stored_as": "float16 (to stay under 5 MiB in git); it loads into a float32 model",
        "validation": "whole val photos of the catalogue (4), sigma 25",
        "validation_psnr_float32": validation_psnr(model32, val),
        "validation_psnr_float16_weights": validation_psnr(model16, val),
        "test": f"whole test photos of the catalogue ({len(test)}), sigma 25, never trained, validated or tuned on",
        "test_psnr": sum(test_teacher) / len(test_teacher),
        "test_psnr_nlm": sum(test_nlm) / len(test_nlm),
        "test_per_photo": {n: {"teacher": t, "nlm": c} for n, t, c in zip(test, test_teacher, test_nlm, strict=True)},
    }
    if previous is not None:
        record["warm_started_from"] = previous
    ASSET.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / "log.jsonl").write_text(log)
    nlm_val = sum(psnr(restore_array(nlm, lq, 0), gt) for lq, gt in val) / len(val)
    plot_training_curve(
        REPORT / "log.jsonl",
        REPORT / "curve.png",
        f"tiny teacher, sigma 25, {summary['ranks']} ranks{', warm-started' if previous else ''}: test "
        f"{record['test_psnr']:.2f} dB "
        f"(NLM {record['test_psnr_nlm']:.2f} dB)",
        {"NLM on the val photos": nlm_val},
    )
    print(json.dumps({k: v for k, v in record.items() if "psnr" in k}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
