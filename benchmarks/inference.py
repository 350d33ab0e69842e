"""Eager PyTorch against ExecuTorch on the same model and the same tiles, with the share of CPU time in the kernel.

    python benchmarks/inference.py [--model CHECKPOINT] [--tiles 256 512] [--json out.json]

The model (default: the embedded teacher) is lowered to an XNNPACK `.pte` at each tile size (cached beside the
results), then every measurement runs in a fresh process of one thread (torch intra-op and ExecuTorch's pool):
  eager             `edgeens.restore.load_restorer(checkpoint).run` as restore, bench, search and validation use it
  eager, glibc      the same with malloc left at glibc's defaults (EDGEENS_KEEP_ALLOCATOR=1): the "before"
  executorch        `load_restorer(pte).run` on the same tiles
Each times `--repeats` calls on noisy crops of a test photo after one warm-up call, and reads user and system CPU
seconds from getrusage over the timed calls. Targets (issue 21): eager within 1.5x of ExecuTorch at 256 and 512,
system time under 5% of CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_MODEL = HERE.parent / "edgeens" / "assets" / "teacher-tiny-gaussian25.safetensors"
MODES = ("eager", "eager-glibc", "executorch")


def tiles(size: int, count: int = 3):
    """`count` noisy size x size crops (sigma 25) of a photo: a test photo when the catalogue is installed."""
    import numpy as np
    import torch

    from edgeens.data.bundled import bundled_photo
    from edgeens.data.synthetic import gaussian_noise

    try:
        from edgeens.data.photos import photo_split

        photo = photo_split("test")["plasma-EveningGlow"]
    except Exception:  # the catalogue is optional here: any natural photo times the same
        photo = bundled_photo("astronaut")
    if min(photo.shape[:2]) < size:  # reflect up to the tile: timing depends on the size, not the content
        pad = size - min(photo.shape[:2])
        photo = np.pad(photo, ((0, pad), (0, pad), (0, 0)), mode="reflect")
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        top = (photo.shape[0] - size) * i // max(1, count - 1)
        left = (photo.shape[1] - size) * i // max(1, count - 1)
        crop = gaussian_noise(photo[top : top + size, left : left + size], 25.0, rng)
        out.append(torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None])
    return out


def worker(mode: str, model: Path, size: int, repeats: int) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    import edgeens.allocator
    from edgeens.restore import load_restorer

    restorer = load_restorer(model, threads=1)
    inputs = tiles(size)
    restorer.run(inputs[0])  # warm-up: lazy initialisation, first-touch page faults
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(repeats):
        x = inputs[i % len(inputs)]
        start = time.perf_counter()
        restorer.run(x)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "mode": mode,
        "tile": size,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs": repeats,
        "user_s": user,
        "system_s": system,
        "system_share": system / max(user + system, 1e-9),
        "threads": torch.get_num_threads(),
        "allocator": edgeens.allocator.STATE["reason"],
        "peak_rss_gb": after.ru_maxrss / 1e6,
    }


def lower(model: Path, size: int, cache: Path) -> Path:
    """The model's XNNPACK program at size x size, built once."""
    import hashlib

    import torch

    from edgeens.compile.executorch import lower_to_executorch
    from edgeens.models import load_model

    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:10]  # the weights, not the name: a retrained model
    pte = cache / f"{model.stem}-{digest}-{size}.pte"
    if not pte.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"lowering {model.name} at {size}x{size} ...", flush=True)
        lower_to_executorch(load_model(model).eval(), (torch.rand(1, 3, size, size),)).save(pte)
    return pte


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "PROGRAM", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, program, size = args.worker
        print(json.dumps(worker(mode, Path(program), int(size), args.repeats)))
        return

    cache = HERE / "results" / ".programs"
    results = []
    for size in args.tiles:
        pte = lower(args.model, size, cache)
        for mode in MODES:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            if mode == "eager-glibc":
                env["EDGEENS_KEEP_ALLOCATOR"] = "1"
            program = pte if mode == "executorch" else args.model
            command = [sys.executable, __file__, "--repeats", str(args.repeats), "--worker", mode, str(program)]
            done = subprocess.run([*command, str(size)], env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(
                f"tile {size:4d} {mode:12s} {r['median_s'] * 1e3:8.1f} ms  system {r['system_share']:6.1%} of CPU "
                f"(user {r['user_s']:.2f} s, sys {r['system_s']:.2f} s), peak {r['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    lines = [f"model {args.model.name}, 1 thread, {args.repeats} timed calls per measurement (median)"]
    lines.append(
        "| tile | eager ms | eager (glibc malloc) ms | ExecuTorch ms | eager / ET | before / ET | "
        "system share eager | before |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for size in args.tiles:
        row = {r["mode"]: r for r in results if r["tile"] == size}
        eager, before, et = (row[m]["median_s"] for m in MODES)
        lines.append(
            f"| {size} | {eager * 1e3:.0f} | {before * 1e3:.0f} | {et * 1e3:.0f} | {eager / et:.2f}x | "
            f"{before / et:.2f}x | {row['eager']['system_share']:.1%} | {row['eager-glibc']['system_share']:.1%} |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "table": lines}, indent=1))
        args.json.with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
