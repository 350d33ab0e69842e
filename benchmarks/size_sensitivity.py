"""Does a model restore whole photos as well as tiles of the size it was trained on?

    python benchmarks/size_sensitivity.py runs/tiny-2x/teacher/teacher.safetensors \
        runs/tiny-2x/finetune/R-G1-R-G1-G1-G1-G1-G1/hybrid.safetensors --split val --tiles 64

Scores each model (any checkpoint `edgeens.models.load_model` reads) on the whole photos of one split of the
catalogue (Gaussian noise, sigma 25) restored in one piece and in overlapping tiles of each `--tiles` side (overlap
a quarter of the tile, at most 32), 1 thread. A model whose global statistics (channel attention over the whole
input, global pooling) were learnt on small crops scores better in small tiles than whole; one that generalises
scores the same. Choose recipes on `--split val`: the test photos are the comparison's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgeens.data.photos import degraded_pairs
from edgeens.metrics import psnr
from edgeens.models import load_model
from edgeens.models.images import restore_whole
from edgeens.restore import eager_restorer, restore_array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--tiles", default="64", help="comma-separated tile sides (multiples of 8)")
    parser.add_argument("--sigma", type=float, default=25.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tiles = [int(t) for t in args.tiles.split(",") if t.strip()]
    pairs = list(degraded_pairs(args.split, "gaussian_noise", args.sigma).values())
    for path in args.models:
        start = time.perf_counter()
        model = load_model(path).eval()
        restorer = eager_restorer(model, str(path))
        row: dict[str, object] = {"model": str(path), "split": args.split, "photos": len(pairs), "threads": 1}
        row["whole"] = float(np.mean([psnr(restore_whole(model, lq), gt) for lq, gt in pairs]))
        for tile in tiles:
            restored = (restore_array(restorer, lq, tile=tile, overlap=min(32, tile // 4)) for lq, _ in pairs)
            row[f"tile{tile}"] = float(np.mean([psnr(out, gt) for out, (_, gt) in zip(restored, pairs, strict=True)]))
        row["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
