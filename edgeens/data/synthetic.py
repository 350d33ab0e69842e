"""Synthetic degradations of clean images, for training and demos without a paired dataset.

Each takes a clean float32 HWC image in [0, 1] and a numpy Generator and returns the degraded image (float32,
not clipped for noise, as Restormer's Gaussian-denoising data). Same generator state, same result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgeens.data.transforms import dihedral


def gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, (sigma/255)^2) noise, unclipped (Restormer's Gaussian denoising recipe)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (on the 0-255 scale), got {sigma}")
    return (clean + rng.normal(0.0, sigma / 255.0, clean.shape)).astype(np.float32)


MOTION_KERNEL_SIZE = 13  # the largest shake drawn: 11 px of path in a 13x13 grid


def motion_blur_kernel(
    size: int, rng: np.random.Generator, length: float | None = None, curvature: float | None = None
) -> np.ndarray:
    """A normalised kernel along a random camera-shake trajectory: a walk of `length` pixels whose direction turns
    by N(0, curvature) radians every quarter pixel (0: a straight line), rasterised with bilinear splatting into a
    size x size grid. Unset, the length is drawn from [3, size - 2] and the curvature from [0, 0.2]."""
    if size < 5 or size % 2 == 0:
        raise ValueError(f"motion-blur kernel size must be odd and >= 5, got {size}")
    length = float(rng.uniform(3, size - 2)) if length is None else float(length)
    curvature = float(rng.uniform(0.0, 0.2)) if curvature is None else float(curvature)
    steps = max(2, int(length * 4))
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, curvature, steps))
    path = np.cumsum(np.stack([np.cos(angle), np.sin(angle)], 1) * (length / steps), axis=0)
    path -= path.mean(0) - (size - 1) / 2  # centre the trajectory
    kernel = np.zeros((size, size), np.float64)
    for x, y in np.clip(path, 0, size - 1.001):
        x0, y0, fx, fy = int(x), int(y), x - int(x), y - int(y)
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return (kernel / kernel.sum()).astype(np.float32)


def blur(clean: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with `kernel` (reflect padding, same size)."""
    x = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None]
    c, pad = x.shape[1], kernel.shape[0] // 2
    k = torch.from_numpy(kernel[::-1, ::-1].copy())[None, None].expand(c, 1, *kernel.shape)
    out = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), k, groups=c)
    return out[0].numpy().transpose(1, 2, 0).copy()


@dataclass(frozen=True)
class MotionBlur:
    """One camera shake: its kernel and the sensor noise (0-255 scale) added after it. Drawn before anything else
    from the generator, so a non-blind baseline can redraw the true kernel from the same seed."""

    kernel: np.ndarray
    noise_sigma: float

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int = MOTION_KERNEL_SIZE) -> MotionBlur:
        return cls(motion_blur_kernel(size, rng), float(rng.uniform(0.5, 2.0)))

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = blur(clean, self.kernel) + rng.normal(0.0, self.noise_sigma / 255.0, clean.shape)
        return np.clip(noisy, 0, 1).astype(np.float32)  # a camera's output: clipped


def motion_blur(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur along a random shake (length 3-11 px, any angle, curvature 0-0.2), then camera noise (sigma 0.5-2)."""
    return MotionBlur.draw(rng).apply(clean, rng)


def rain_streaks(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add bright slanted streaks: sparse random drops smeared along one near-vertical direction, screen-blended.
    Drawn per image: density 0.1-1% of pixels, angle within 0.4 rad of vertical, length 9-25 px, width 1-3 px,
    brightness 0.5-0.9."""
    h, w = clean.shape[:2]
    density, angle = rng.uniform(0.001, 0.01), rng.uniform(-0.4, 0.4)
    size, width, brightness = int(rng.integers(4, 13)) * 2 + 1, int(rng.integers(1, 4)), rng.uniform(0.5, 0.9)
    drops = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    kernel = np.zeros((size, size), np.float32)
    centre = (size - 1) / 2
    for t in np.linspace(-centre, centre, size * 2):
        row, col = int(round(centre + t)), int(round(centre + t * np.tan(angle)))
        kernel[row, max(0, col - width // 2) : col + (width + 1) // 2] = 1.0
    streaks = blur(drops[..., None], kernel / kernel.sum() * size)[..., 0]
    streaks = np.clip(streaks * brightness, 0, 1)[..., None]
    return np.clip(clean + streaks * (1 - clean), 0, 1).astype(np.float32)  # screen blend: rain brightens


DEGRADATIONS = ("gaussian_noise", "motion_blur", "rain_streaks")


def degrade(clean: np.ndarray, kind: str, rng: np.random.Generator, sigma: float = 25.0) -> np.ndarray:
    """Apply one named degradation (`gaussian_noise` at `sigma`, `motion_blur`, `rain_streaks`)."""
    if kind == "gaussian_noise":
        return gaussian_noise(clean, sigma, rng)
    if kind == "motion_blur":
        return motion_blur(clean, rng)
    if kind == "rain_streaks":
        return rain_streaks(clean, rng)
    raise ValueError(f"unknown degradation {kind!r}; choose one of: {', '.join(DEGRADATIONS)}")


@dataclass
class SyntheticPairs:
    """(degraded, clean) crops made on the fly from clean photographs: random crop, dihedral flip, then degrade."""

    clean: list[np.ndarray]
    degradation: str = "gaussian_noise"
    sigma: float = 25.0

    def sample(self, patch: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        lqs, gts = [], []
        for index in rng.integers(0, len(self.clean), batch):
            image = self.clean[index]
            h, w = image.shape[:2]
            top, left = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
            gt = dihedral(image[top : top + patch, left : left + patch], int(rng.integers(0, 8)))
            lqs.append(degrade(gt, self.degradation, rng, self.sigma).transpose(2, 0, 1))
            gts.append(gt.transpose(2, 0, 1))
        return np.stack(lqs), np.stack(gts)
