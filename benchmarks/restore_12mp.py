"""`edgeens restore` of a 12-megapixel photo (4000x3000) from a checkpoint and from an ExecuTorch program:
wall time, CPU time split into user and system, and peak memory of the whole command.

    python benchmarks/restore_12mp.py [--model CHECKPOINT] [--pte PROGRAM] [--threads 2] [--json out.json]

The photo is a catalogue test photo scaled up to 4000x3000 with sigma-25 noise (the content does not change the
time; the size does). Each restore runs as its own `edgeens restore` process, measured with getrusage over it.
Default model: the embedded teacher; default program: its 512x512 XNNPACK program (benchmarks/inference.py's cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_MODEL = HERE.parent / "edgeens" / "assets" / "teacher-tiny-gaussian25.safetensors"


def make_photo(path: Path) -> None:
    import numpy as np
    from PIL import Image

    from edgeens.data.photos import photo_split

    clean = photo_split("test")["plasma-EveningGlow"]
    big = Image.fromarray((clean * 255 + 0.5).astype(np.uint8)).resize((4000, 3000), Image.Resampling.BICUBIC)
    noisy = np.asarray(big, dtype=np.float32) + np.random.default_rng(0).normal(0, 25, (3000, 4000, 3))
    Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8)).save(path, format="PNG")


# Runs one command and reports its own children's usage: per-command figures, peak memory included.
MEASURE = (
    "import json, resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(json.dumps([u.ru_utime, u.ru_stime, u.ru_maxrss]))"
)


def timed_restore(photo: Path, model: Path, out: Path, threads: int, tile: int) -> dict:
    start = time.perf_counter()
    command = [sys.executable, "-m", "edgeens", "restore", str(photo), "--model", str(model), "--out", str(out)]
    command += ["--threads", str(threads), "--tile", str(tile)]
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    user, system, peak_kib = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "model": model.name,
        "threads": threads,
        "tile": tile if model.suffix not in (".pte", ".onnx") else "program's own",
        "wall_s": wall,
        "user_s": user,
        "system_s": system,
        "peak_rss_gb": peak_kib / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--pte", type=Path, default=None, help="default: the model's 512x512 program (built once)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.pte is None:
        from inference import lower  # benchmarks/inference.py: the same cached programs

        args.pte = lower(args.model, 512, HERE / "results" / ".programs")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo-12mp.png"
        make_photo(photo)
        for model in (args.model, args.pte):
            results.append(timed_restore(photo, model, Path(tmp) / model.stem, args.threads, args.tile))
            r = results[-1]
            print(
                f"{r['model']}: {r['wall_s']:.1f} s wall, user {r['user_s']:.1f} s, system {r['system_s']:.1f} s, "
                f"peak {r['peak_rss_gb']:.2f} GB ({r['threads']} threads, tile {r['tile']})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"photo": "4000x3000", "results": results}, indent=1))


if __name__ == "__main__":
    main()
