"""Tiny paired datasets in every layout edgeens reads, generated for tests: smooth random pictures (clean) and a
noisy copy (degraded), written where each layout puts them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeens.data.images import write_image

SIZE = (64, 80)  # height, width: as large as the run's default 64-px fine-tuning patches


def picture(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean): a smooth random picture and a noisy copy of it."""
    coarse = rng.random((size[0] // 8 + 1, size[1] // 8 + 1, 3))
    clean = np.kron(coarse, np.ones((8, 8, 1)))[: size[0], : size[1]]
    return np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1), clean


def write_pair(lq_path: Path, gt_path: Path, rng: np.random.Generator, size: tuple[int, int] = SIZE) -> None:
    lq, gt = picture(rng, size)
    for path, image in ((lq_path, lq), (gt_path, gt)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, image)


def make_layout(root: Path, layout: str, count: int = 6, seed: int = 0) -> Path:
    """A dataset of `count` pairs (per split where the layout has its own) in `layout`; returns the path to give
    as --data."""
    rng = np.random.default_rng(seed)
    if layout == "restormer":  # Restormer's prepared folders, and any plain input/ + target/ pair
        for n in range(count):
            write_pair(root / "input" / f"{n}.png", root / "target" / f"{n}.png", rng)
    elif layout == "gopro":  # its own split: train/ and test/, one folder per scene with blur/ and sharp/
        for split in ("train", "test"):
            for n in range(count):
                scene = root / split / f"GOPR{n // 2:04d}"
                write_pair(scene / "blur" / f"{n:06d}.png", scene / "sharp" / f"{n:06d}.png", rng)
    elif layout == "hide":
        for n in range(count):
            write_pair(root / "test" / "long" / f"{n}.png", root / "GT" / f"{n}.png", rng)
    elif layout == "realblur":  # its own split: train and test lists of "gt blur" lines
        for split in ("train", "test"):
            lines = []
            for n in range(count):
                gt, blur = f"scene{n}/gt/{split}_{n}.png", f"scene{n}/blur/{split}_{n}.png"
                write_pair(root / blur, root / gt, rng)
                lines.append(f"{gt} {blur}")
            (root / f"RealBlur_J_{split}_list.txt").write_text("\n".join(lines) + "\n")
    elif layout == "rain100":
        for n in range(count):
            write_pair(root / "rainy" / f"rain-{n + 1}.png", root / f"norain-{n + 1}.png", rng)
    elif layout == "sidd":  # one folder per scene
        for n in range(count):
            scene = root / f"{n:04d}_001_S6_00100_00060_3200_L"
            write_pair(scene / f"{n:04d}_NOISY_SRGB_010.PNG", scene / f"{n:04d}_GT_SRGB_010.PNG", rng)
    elif layout == "dpdd":  # its own split: train_c / test_c (centre view) with source/ and target/
        for split in ("train", "test"):
            for n in range(count):
                name = f"1P0A{n:04d}.png"
                write_pair(root / f"{split}_c" / "source" / name, root / f"{split}_c" / "target" / name, rng)
    else:
        raise ValueError(f"unknown layout {layout}")
    return root


LAYOUTS = ("restormer", "gopro", "hide", "realblur", "rain100", "sidd", "dpdd")
OWN_SPLIT = {"gopro", "realblur", "dpdd"}
