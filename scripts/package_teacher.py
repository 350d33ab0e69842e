"""Package a teacher run on the photo catalogue as the embedded teacher of its task: float16 weights (git keeps them
under 5 MiB; they load into a float32 model), a JSON with the exact command, recipe and scores, and the training
curve.

    python scripts/package_teacher.py RUN_DIR "COMMAND THAT TRAINED IT" [--milestone]

The task (Gaussian noise, motion blur, rain streaks) is the run folder's `data.json`; the asset is the one
`edgeens run` adopts for that task (edgeens.run.EMBEDDED_TEACHERS) and the curve goes to reports/teacher*/.
`--milestone` packages an unfinished run from its last checkpoint, so that a lost machine costs hours, not days;
the JSON says which iteration of how many.

A run warm-started (`edgeens teacher --init`) from its own task's embedded teacher continues that record: the asset's
JSON and training log as they were become the first stage ("warm_started_from", with the commit that holds those
weights) and the logs are joined. One warm-started from another task's teacher names it ("initialised_from").

Scores: validation PSNR on the catalogue's whole val photos (float32 and float16 weights), test PSNR on its whole
test photos beside the task's references on the same pairs (edgeens.classical.task_references: the degraded input,
NLM, Wiener and Richardson-Lucy told the kernel, a median filter)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from edgeens.classical import task_references
from edgeens.data.photos import degraded_pairs
from edgeens.data.task import TaskData
from edgeens.metrics import psnr
from edgeens.models import Restormer
from edgeens.models.checkpoint import weights_hash
from edgeens.report.training import plot_training_curve
from edgeens.restore import load_restorer, restore_array
from edgeens.run import EMBEDDED_TEACHERS, embedded_teacher
from edgeens.train.loop import validation_psnr

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def trained_weights(run_dir: Path, milestone: bool) -> tuple[dict[str, torch.Tensor], int]:
    """The run's weights and the iterations behind them: the finished teacher, or the last checkpoint's model."""
    if not milestone:
        return load_file(str(run_dir / "teacher.safetensors")), json.loads((run_dir / "teacher.json").read_text())[
            "iterations"
        ]
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in state["model"].items()}, int(state["step"])


def previous_record(init: str, asset: Path) -> tuple[str, dict | None]:
    """("continues", the asset's record) when the run started from this task's embedded teacher, ("initialised",
    another task's record) when from another's, ("", None) from random weights."""
    found = re.search(r"weights sha256 ([0-9a-f]+)", init)
    if not found:
        return "", None
    for path in sorted(set(EMBEDDED_TEACHERS.values())):
        if path.is_file() and weights_hash(Restormer.from_checkpoint(path)) == found.group(1):
            record = json.loads(path.with_suffix(".json").read_text())
            record["weights_at_commit"] = git("log", "-1", "--format=%h", "--", str(path.relative_to(ROOT)))
            return ("continues" if path == asset else "initialised"), record | {"asset": path.name}
    raise SystemExit(f"the run started from weights ({init}) that are no embedded teacher: record them by hand")


def chain_iterations(record: dict) -> int:
    """The iterations behind a record: its own and those of every stage it was warm-started from."""
    earlier = record.get("warm_started_from")
    return record["iterations"] + (chain_iterations(earlier) if earlier else 0)


def own_milestone(asset: Path, command: str) -> tuple[str, dict] | None:
    """When the asset is a milestone of this same run (the same command), the record that milestone continued or
    was initialised from: packaging the run again replaces its milestone rather than continuing from it."""
    path = asset.with_suffix(".json")
    current = json.loads(path.read_text()) if path.is_file() else {}
    if not current.get("milestone") or current.get("command") != command:
        return None
    if "warm_started_from" in current:
        return "continues", current["warm_started_from"]
    if "initialised_from" in current:
        return "initialised", current["initialised_from"]
    return "", {}


def main(run_dir: Path, command: str, milestone: bool = False) -> None:
    torch.set_num_threads(1)
    task = TaskData.from_record(json.loads((run_dir / "data.json").read_text()))
    asset = embedded_teacher("tiny", task)
    if task.source != "catalogue" or asset is None:
        raise SystemExit(f"{run_dir} trained on {task.describe()}: only the catalogue's tasks have embedded teachers")
    report = ROOT / "reports" / ("teacher" if task.degradation == "gaussian_noise" else asset.stem.replace("-tiny", ""))
    summary = json.loads((run_dir / "teacher.json").read_text()) if not milestone else {}
    if not milestone and not summary.get("finished"):
        raise SystemExit(f"{run_dir} holds no finished teacher (--milestone packages its last checkpoint)")
    recipe = summary.get("recipe") or json.loads((run_dir / "recipe.json").read_text())
    weights, iterations = trained_weights(run_dir, milestone)
    how, previous = own_milestone(asset, command) or previous_record(recipe.get("init_weights", ""), asset)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    log = [entry for entry in log if entry["iteration"] <= iterations]
    if how == "continues":
        offset = chain_iterations(previous)
        earlier = [json.loads(line) for line in (report / "log.jsonl").read_text().splitlines()]
        earlier = [entry for entry in earlier if entry["iteration"] <= offset]  # less an earlier milestone's own
        log = earlier + [{**entry, "iteration": entry["iteration"] + offset} for entry in log]
    half = {k: v.half().contiguous() for k, v in weights.items()}
    save_file(half, str(asset))
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else None
    model16 = Restormer.from_checkpoint(asset).eval()
    model32 = Restormer(**model16.config.to_dict())
    model32.load_state_dict(weights)
    model32.eval()
    level = f", sigma {task.sigma:g}" if task.degradation == "gaussian_noise" else ""
    val = degraded_pairs("val", task.degradation, task.sigma)
    test = degraded_pairs("test", task.degradation, task.sigma)
    eager = load_restorer(asset)
    test_teacher = {name: psnr(restore_array(eager, lq, 0), gt) for name, (lq, gt) in test.items()}
    references = {r.label: r for r in task_references(task, "test")}
    test_references = {
        label: {name: psnr(r.restore(name, lq), gt) for name, (lq, gt) in test.items()}
        for label, r in references.items()
    }
    record = {
        "command": command,
        "code": f"trained at commit {git('rev-parse', '--short', 'HEAD')} (resumed across restarts from checkpoints)",
        "iterations": iterations,
        **({"milestone": f"iteration {iterations} of {recipe['iterations']}; training continues"} if milestone else {}),
        "ranks": summary.get("ranks", 1),
        # a milestone has no summary yet: its command says how many threads it trained with
        "threads_per_rank": summary.get("threads") or int((re.findall(r"--threads (\d+)", command) or ["1"])[-1]),
        "config": summary.get("config", config or model16.config.to_dict()),
        "recipe": recipe,
        "data": f"photo catalogue (edgeens/data/photos.py): train split, {task.degradation}{level}",
        "stored_as": "float16 (to stay under 5 MiB in git); it loads into a float32 model",
        "validation": f"whole val photos of the catalogue ({len(val)}), {task.degradation}{level}",
        "validation_psnr_float32": validation_psnr(model32, list(val.values())),
        "validation_psnr_float16_weights": validation_psnr(model16, list(val.values())),
        "test": f"whole test photos of the catalogue ({len(test)}), {task.degradation}{level}, never trained, "
        "validated or tuned on",
        "test_psnr": float(np.mean(list(test_teacher.values()))),
        "test_references": {
            label: {"note": references[label].note, "psnr": float(np.mean(list(scores.values())))}
            for label, scores in test_references.items()
        },
        "test_per_photo": {
            name: {"teacher": test_teacher[name], **{label: s[name] for label, s in test_references.items()}}
            for name in test
        },
    }
    if how == "continues":
        record["warm_started_from"] = previous
    elif how == "initialised":
        record["initialised_from"] = {k: previous[k] for k in ("asset", "weights_at_commit", "command", "data")}
    asset.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    report.mkdir(parents=True, exist_ok=True)
    (report / "log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in log))
    val_references = {
        f"{r.label} on the val photos": float(np.mean([psnr(r.restore(n, lq), gt) for n, (lq, gt) in val.items()]))
        for r in task_references(task, "val")
    }
    best = max(record["test_references"].items(), key=lambda item: item[1]["psnr"])
    plot_training_curve(
        report / "log.jsonl",
        report / "curve.png",
        f"tiny teacher, {task.degradation}{level}, {record['ranks']} rank(s)"
        f"{', warm-started' if how else ''}: test {record['test_psnr']:.2f} dB ({best[0]} {best[1]['psnr']:.2f} dB)",
        val_references,
    )
    print(json.dumps({k: v for k, v in record.items() if "psnr" in k or k == "test_references"}, indent=1))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--milestone"]
    main(Path(arguments[0]), arguments[1], "--milestone" in sys.argv)
