"""The benchmark harness: several models on the same (degraded, clean) pairs, PSNR / SSIM and latency per image,
side by side, as CSV and a Markdown table. Models are anything `edgeens.restore` loads (checkpoints, .pte, .onnx),
restored the way `edgeens restore` does it (tiles for fixed-size programs)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeens.metrics import psnr, ssim
from edgeens.restore import Restorer, restore_array


def benchmark_models(
    restorers: list[Restorer],
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]],
    tile: int = 512,
    overlap: int = 32,
    progress: Callable[[str], None] | None = None,
    count: int | None = None,
) -> list[dict[str, Any]]:
    """One row per (model, image): PSNR and SSIM (RGB, BasicSR conventions) and seconds to restore. The pairs are
    read one at a time (every model restores a pair before the next is read): memory holds one pair, not the set."""
    rows = []
    for number, (name, degraded, clean) in enumerate(pairs, 1):
        for restorer in restorers:
            if progress:
                progress(f"image {number}{f'/{count}' if count else ''} {name}: {restorer.name}")
            start = time.perf_counter()
            restored = restore_array(restorer, degraded, tile, overlap)
            seconds = time.perf_counter() - start
            try:
                scores = {"psnr": psnr(restored, clean), "ssim": ssim(restored, clean)}
            except ValueError as err:  # a 1x1 image, say: the file is what the user can act on
                raise ValueError(f"{name}: {err}") from None
            rows.append({"model": restorer.name, "image": name, **scores, "seconds": seconds})
    order = {restorer.name: i for i, restorer in reversed(list(enumerate(restorers)))}
    return sorted(rows, key=lambda row: order[row["model"]])  # stable: each model's rows in the images' order


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean PSNR / SSIM and median seconds per model, in the order the models were given."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    summary = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        summary.append(
            {
                "model": model,
                "images": len(mine),
                "psnr": float(np.mean([r["psnr"] for r in mine])),
                "ssim": float(np.mean([r["ssim"] for r in mine])),
                "seconds": float(np.median([r["seconds"] for r in mine])),
            }
        )
    return summary


def write_results(rows: list[dict[str, Any]], out_dir: str | Path, note: str) -> tuple[Path, Path]:
    """`bench.csv` (one row per model and image) and `bench.md` (per-image PSNR side by side, then the means)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "bench.csv", out / "bench.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "image", "psnr", "ssim", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    images = list(dict.fromkeys(r["image"] for r in rows))
    lookup = {(r["model"], r["image"]): r for r in rows}
    lines = [f"# Benchmark\n\n{note}\n", "| image | " + " | ".join(f"{m} PSNR / SSIM" for m in models) + " |"]
    lines.append("|---" * (len(models) + 1) + "|")
    for image in images:
        cells = [f"{lookup[m, image]['psnr']:.2f} / {lookup[m, image]['ssim']:.4f}" for m in models]
        lines.append(f"| {image} | " + " | ".join(cells) + " |")
    lines += ["", "| model | images | mean PSNR (dB) | mean SSIM | median seconds per image |", "|---|---|---|---|---|"]
    for s in summarize(rows):
        lines.append(f"| {s['model']} | {s['images']} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.3f} |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def bench_pairs(
    data: Path | None, split: str, degradation: str | None, sigma: float | None
) -> tuple[Iterator[tuple[str, np.ndarray, np.ndarray]], int, str]:
    """(name, degraded, clean) images to benchmark on, read one at a time, their count, and a note saying what
    they are: every pair of a paired folder, or one split of the photo catalogue (or the bundled photos) degraded
    with `degradation`."""
    if data is not None:
        from edgeens.data.paired import PairedImages, find_pairs
        from edgeens.data.task import DataRequest

        DataRequest(data, degradation=degradation, sigma=sigma).check()
        images = PairedImages(find_pairs(data), cache_bytes=0)

        def read() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
            for index, (lq, _) in enumerate(images.pairs):
                yield (lq[0] if isinstance(lq, tuple) else lq).name, *images.read(index)

        return read(), len(images), f"Pairs from {data}"
    degradation, sigma = degradation or "gaussian_noise", 25.0 if sigma is None else sigma
    if split == "bundled":
        from edgeens.data.task import bundled_validation

        found = [(f"bundled-{i}", lq, gt) for i, (lq, gt) in enumerate(bundled_validation(degradation, sigma))]
    elif split in ("train", "val", "test"):
        from edgeens.data.photos import degraded_pairs

        found = [(n, lq, gt) for n, (lq, gt) in degraded_pairs(split, degradation, sigma).items()]
    else:
        raise ValueError(f"--split must be test, val, train or bundled, got {split!r}")
    return iter(found), len(found), f"Photos ({split}), {degradation} (sigma {sigma:g})"
