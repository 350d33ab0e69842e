"""Peak memory of `edgeens run --data` on a large paired dataset: the images are streamed, not held.

    python benchmarks/data_memory.py [--pairs 500] [--folder /tmp/edgeens-data-500] [--json out.json]

Writes `--pairs` pairs of 1280x720 PNGs (a smooth random picture and a noisy copy; kept in --folder and reused),
then runs the whole pipeline on them at toy budgets (`--teacher-iterations 30 --distill-steps 5 --budget 18
--finetune-iterations 10 --baselines none`, tiny preset, 256x256 deployment, 2 jobs of one thread) as one
subprocess, sampling the resident memory of its whole process tree (the run and its workers, summed) every
0.2 s from /proc. The reference: holding the dataset as float32 arrays, as a reader that loads everything does.
Target (issue 38): the tree's peak under 4 GiB for 500 pairs."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 720, 1280


def write_dataset(folder: Path, pairs: int) -> None:
    """`pairs` pairs in Restormer's layout (input/, target/); pairs already written are kept."""
    rng = np.random.default_rng(0)
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for n in range(pairs):
        if (folder / "target" / f"{n:04d}.png").is_file():
            continue
        coarse = rng.random((HEIGHT // 16 + 1, WIDTH // 16 + 1, 3))
        clean = np.kron(coarse, np.ones((16, 16, 1)))[:HEIGHT, :WIDTH]
        noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
        for sub, image in (("input", noisy), ("target", clean)):
            Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(folder / sub / f"{n:04d}.png", compress_level=1)


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while we looked
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def peaks_by_step(lines: list[tuple[float, str]], samples: list[tuple[float, int]], seconds: float) -> dict:
    """The tree's peak GiB in each step: the entrance until the "data:" line, then each step until its "<step>:
    done (N s)" or "reused" line."""
    ends = [(t, m.group(1)) for t, line in lines if (m := re.match(r"\s*(\w+): (done|reused) \(", line))]
    entrance = next((t for t, line in lines if line.startswith("data:")), ends[0][0] if ends else seconds)
    phases, since = {}, 0.0
    for until, name in [(entrance, "entrance (data check)"), *ends]:
        phases[name] = round(max((rss for t, rss in samples if since <= t <= until), default=0) / 2**30, 2)
        since = until
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "edgeens-data-500")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    write_dataset(args.folder, args.pairs)
    written = time.perf_counter() - started
    budgets = ["--teacher-iterations", "30", "--distill-steps", "5", "--budget", "18", "--finetune-iterations", "10"]
    with tempfile.TemporaryDirectory(prefix="edgeens-data-memory-") as tmp:
        command = [sys.executable, "-m", "edgeens", "run", "--data", str(args.folder), "--out", f"{tmp}/run"]
        command += [*budgets, "--baselines", "none", "--jobs", "2", "--threads", "1"]
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        )
        lines: list[tuple[float, str]] = []  # each output line with when it came: a step's end
        reader = threading.Thread(
            target=lambda: lines.extend((time.perf_counter() - start, line) for line in process.stdout), daemon=True
        )
        reader.start()
        samples: list[tuple[float, int]] = []
        while process.poll() is None:
            samples.append((time.perf_counter() - start, tree_rss(process.pid)))
            time.sleep(0.2)
        reader.join(timeout=10)
        output = "".join(line for _, line in lines)
        seconds = time.perf_counter() - start
        peak = max(rss for _, rss in samples)
        phases = peaks_by_step(lines, samples, seconds)
        steps = json.loads(Path(f"{tmp}/run/run.json").read_text())["steps"] if process.returncode == 0 else {}
        data = json.loads(Path(f"{tmp}/run/data.json").read_text()) if process.returncode == 0 else {}
    if process.returncode != 0:
        print(output[-4000:])
        raise SystemExit(f"edgeens run failed with status {process.returncode}")
    as_floats = args.pairs * 2 * HEIGHT * WIDTH * 3 * 4
    result = {
        "pairs": args.pairs,
        "size": f"{WIDTH}x{HEIGHT}",
        "split": data.get("counts"),
        "command": " ".join(command[2:]).replace(tmp, "<tmp>"),
        "threads_per_process": 1,
        "jobs": 2,
        "dataset_written_seconds": round(written, 1),
        "run_seconds": round(seconds, 1),
        "step_seconds": {name: step["seconds"] for name, step in steps.items()},
        # Start-up and the entrance's check of every image: the run's time outside its steps.
        "entrance_seconds": round(seconds - sum(step["seconds"] for step in steps.values()), 1),
        "peak_tree_rss_gib": round(peak / 2**30, 2),
        "peak_tree_rss_gib_by_step": phases,
        "dataset_as_float32_gib": round(as_floats / 2**30, 2),
        "target_gib": 4.0,
        "within_target": peak < 4 * 2**30,
        "cpu": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
