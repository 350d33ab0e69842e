"""Peak memory of `edgeens restore` against the photo's size: what the README's memory claim rests on.

    python benchmarks/restore_memory.py [--sides 1000 2000 4000 6000 8000] [--json out.json]

For each side S it writes an S x S JPEG (a smooth random picture with noise) and restores it with a small
Restormer checkpoint (dim 8, one block per level: the model's share is small and fixed, the image's is what grows)
in 512-px tiles, 1 thread, as its own `edgeens restore` process; peak resident memory from getrusage over that
process. The reference lines, in the same table: the photo's own bytes (8-bit RGB in and out: 6 bytes a pixel) and
what one float32 copy of it costs (12 bytes a pixel), which the restore used to hold several of."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from edgeens.models import Restormer

MEASURE = (
    "import json, resource, subprocess, sys, time; start = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(json.dumps({'peak_gib': usage.ru_maxrss / 2**20, 'seconds': time.perf_counter() - start, "
    "'system_seconds': usage.ru_stime}))"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1000, 2000, 4000, 6000, 8000])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeens-restore-memory-") as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        rng = np.random.default_rng(0)
        for side in args.sides:
            coarse = rng.random((side // 32 + 1, side // 32 + 1, 3))
            picture = np.kron(coarse, np.ones((32, 32, 1)))[:side, :side] + rng.normal(0, 0.05, (side, side, 3))
            photo = folder / f"photo-{side}.jpg"
            Image.fromarray((np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)).save(photo, quality=95)
            del picture
            command = [
                sys.executable,
                "-m",
                "edgeens",
                "restore",
                str(photo),
                "--model",
                str(folder / "model.safetensors"),
            ]
            command += ["--out", str(folder / f"out-{side}"), "--tile", "512", "--threads", "1"]
            done = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
            measured = json.loads(done.stdout)
            megapixels = side * side / 1e6
            rows.append(
                {
                    "side": side,
                    "megapixels": round(megapixels, 1),
                    "peak_gib": round(measured["peak_gib"], 2),
                    "seconds": round(measured["seconds"], 1),
                    "system_seconds": round(measured["system_seconds"], 1),
                    "photo_in_and_out_gib": round(6 * side * side / 2**30, 2),
                    "one_float32_copy_gib": round(12 * side * side / 2**30, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    first, last = rows[0], rows[-1]
    slope = (last["peak_gib"] - first["peak_gib"]) * 2**30 / ((last["megapixels"] - first["megapixels"]) * 1e6)
    result = {"rows": rows, "bytes_per_added_pixel": round(slope, 1), "tile": 512, "threads": 1, "when": time.ctime()}
    print(f"peak memory grows by {slope:.1f} bytes per pixel ({first['side']} -> {last['side']} px sides)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
