"""Restormer's training transforms: paired random crops, the 8 dihedral augmentations, the progressive schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def paired_random_crop(
    lq: np.ndarray, gt: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The same random size x size window of both images, reflect-padding images smaller than the window."""
    if lq.shape[:2] != gt.shape[:2]:
        raise ValueError(f"input and target sizes differ: {lq.shape[:2]} vs {gt.shape[:2]}")
    h, w = lq.shape[:2]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        lq, gt = (np.pad(x, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect") for x in (lq, gt))
        h, w = lq.shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return lq[top : top + size, left : left + size], gt[top : top + size, left : left + size]


def dihedral(image: np.ndarray, mode: int) -> np.ndarray:
    """Restormer's `augment_img` modes 0-7: identity, flipud, rot90, rot90+flipud, rot180, rot180+flipud,
    rot270, rot270+flipud (rotations counter-clockwise, as numpy's rot90)."""
    if not 0 <= mode < 8:
        raise ValueError(f"dihedral mode must be in 0..7, got {mode}")
    out = np.rot90(image, k=mode // 2)
    return np.ascontiguousarray(np.flipud(out) if mode % 2 else out)


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Restormer's progressive patches: (patch size, mini-batch) per stage; stage i covers `fractions[i]` of
    training. The defaults are the official lists, as fractions of 300k iterations."""

    patch_sizes: tuple[int, ...] = (128, 160, 192, 256, 320, 384)
    batch_sizes: tuple[int, ...] = (8, 5, 4, 2, 1, 1)
    fractions: tuple[float, ...] = (92 / 300, 64 / 300, 48 / 300, 36 / 300, 36 / 300, 24 / 300)

    def __post_init__(self) -> None:
        if not len(self.patch_sizes) == len(self.batch_sizes) == len(self.fractions):
            raise ValueError("patch_sizes, batch_sizes and fractions need one entry per stage")
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError(f"stage fractions must sum to 1, got {sum(self.fractions)}")

    def at(self, iteration: int, total: int) -> tuple[int, int]:
        """(patch size, batch size) at `iteration` of `total` (the first stage whose end is >= iteration)."""
        end = 0.0
        for patch, batch, fraction in zip(self.patch_sizes, self.batch_sizes, self.fractions, strict=True):
            end += fraction * total
            if iteration <= round(end):
                return patch, batch
        return self.patch_sizes[-1], self.batch_sizes[-1]

    def scaled(self, max_patch: int, min_patch: int = 0) -> ProgressiveSchedule:
        """The same shape of schedule with patches scaled so the largest is `max_patch` (multiples of 8); with
        `min_patch`, mapped linearly onto [min_patch, max_patch] instead (equal: one patch size throughout, as a
        warm-started teacher needs no small-patch stages)."""
        if min_patch and not 8 <= min_patch <= max_patch:
            raise ValueError(f"the smallest patch must be 8..{max_patch} (the largest), got {min_patch}")
        low, high = min(self.patch_sizes), max(self.patch_sizes)
        if min_patch:
            sizes = (min_patch + (p - low) / (high - low) * (max_patch - min_patch) for p in self.patch_sizes)
        else:
            sizes = (p * max_patch / high for p in self.patch_sizes)
        patches = tuple(max(8, int(round(p / 8)) * 8) for p in sizes)
        return ProgressiveSchedule(patches, self.batch_sizes, self.fractions)

    def balanced(self, pixels: int) -> ProgressiveSchedule:
        """The same patches with each stage's batch set to about `pixels` pixels per mini-batch (at least one crop):
        Restormer halves its batch as patches grow to fit GPU memory; on a CPU that only wastes the small-patch
        stages, so here every iteration costs about the same."""
        if pixels < 1:
            raise ValueError(f"pixels per mini-batch must be positive, got {pixels}")
        batches = tuple(max(1, round(pixels / (p * p))) for p in self.patch_sizes)
        return ProgressiveSchedule(self.patch_sizes, batches, self.fractions)
