"""Paired (degraded, clean) images in Restormer's folder convention: `<root>/{input,target}/` (also
`input_crops/target_crops` and DPDD's `inputC`). Pairs match by file stem; when stems differ but the counts
match, by natural sort order (as the official evaluation scripts pair them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeens.data.images import IMAGE_SUFFIXES, ImageError, read_image
from edgeens.data.transforms import dihedral, paired_random_crop

INPUT_DIRS = ("input", "input_crops", "inputC")
TARGET_DIRS = ("target", "target_crops")


class DatasetError(ValueError):
    """A dataset folder that cannot be used, with the folder or file named."""


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(input, target) file pairs under `root` in Restormer's layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    inputs = next((root / d for d in INPUT_DIRS if (root / d).is_dir()), None)
    targets = next((root / d for d in TARGET_DIRS if (root / d).is_dir()), None)
    if inputs is None or targets is None:
        raise DatasetError(
            f"{root} needs an input folder ({' or '.join(INPUT_DIRS)}) and a target folder "
            f"({' or '.join(TARGET_DIRS)}), as Restormer's datasets are laid out; found: "
            f"{', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'}"
        )
    lq, gt = _images(inputs), _images(targets)
    if not lq:
        raise DatasetError(f"{inputs} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    by_stem = {p.stem: p for p in gt}
    if all(p.stem in by_stem for p in lq):
        return [(p, by_stem[p.stem]) for p in lq]
    if len(lq) == len(gt):
        return list(zip(lq, gt, strict=True))
    missing = [p.name for p in lq if p.stem not in by_stem]
    raise DatasetError(
        f"{targets}: no target for {len(missing)} input(s) (e.g. {', '.join(missing[:3])}), and the folders hold "
        f"{len(lq)} inputs but {len(gt)} targets, so they cannot be paired by order either"
    )


@dataclass
class PairedImages:
    """Random paired crops (with the 8 dihedral augmentations) from (input, target) files, loaded once."""

    pairs: list[tuple[Path, Path]]
    channels: int = 3

    def __post_init__(self) -> None:
        self.images: list[tuple[np.ndarray, np.ndarray]] = []
        for lq_path, gt_path in self.pairs:
            lq, gt = read_image(lq_path, self.channels), read_image(gt_path, self.channels)
            if lq.shape != gt.shape:
                raise ImageError(
                    f"{lq_path} is {lq.shape[1]}x{lq.shape[0]} but its target {gt_path} is "
                    f"{gt.shape[1]}x{gt.shape[0]}; pairs must have the same size"
                )
            self.images.append((lq, gt))

    def __len__(self) -> int:
        return len(self.images)

    def sample(
        self, patch: int, batch: int, rng: np.random.Generator, augment: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch of (input, target) crops as float32 (batch, C, patch, patch) arrays."""
        lqs, gts = [], []
        for index in rng.integers(0, len(self.images), batch):
            lq, gt = paired_random_crop(*self.images[index], patch, rng)
            if augment:
                mode = int(rng.integers(0, 8))
                lq, gt = dihedral(lq, mode), dihedral(gt, mode)
            lqs.append(lq.transpose(2, 0, 1))
            gts.append(gt.transpose(2, 0, 1))
        return np.stack(lqs), np.stack(gts)
