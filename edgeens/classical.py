"""Classical methods a user would try before a network, scored beside the models on the same pairs with the same
PSNR / SSIM code: denoisers as restorers for `edgeens bench --baseline`, and each task's references for the compare
step of `edgeens run` (`task_references`).

Denoising: non-local means as scikit-image's own example sets it (fast mode, 5x5 patches, search distance 6,
h = 0.8 sigma); wavelet shrinkage with BayesShrink in YCbCr; total variation (Chambolle) with weight 0.9 sigma,
chosen on the catalogue's validation photos at sigma 25 (weights 0.5-1.5 sigma in steps of 0.1; never on test).
Each is told the true noise level, as a classical method in a denoising benchmark is.

Deblurring: Wiener and Richardson-Lucy deconvolution told the true kernel of each photo (non-blind: a network is
not), on the photo reflect-padded by two kernel widths so the FFT's wrap-around stays outside it. Deraining: a
per-channel median filter. Their settings were chosen on the catalogue's validation photos, never on test
(`python benchmarks/classical_tuning.py`, results in benchmarks/results/classical-tuning.txt)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from edgeens.restore import Restorer

# The note of a reference told what the network is not (each photo's true kernel): it places the teacher, it is not a
# bar a hybrid can be said to miss (edgeens.report.run.given_up).
NON_BLIND = "non-blind: knows the kernel"

if TYPE_CHECKING:
    from edgeens.data.task import TaskData

TV_WEIGHT = 0.9  # x sigma; see the module docstring
WIENER_BALANCE = 0.03  # chosen on the val photos (benchmarks/classical_tuning.py)
RICHARDSON_LUCY_ITERATIONS = 20  # chosen on the val photos
MEDIAN_SIZE = 5  # px; chosen on the val photos


def _nlm(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(
        image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
    )


def _wavelet(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(
        image, sigma=sigma, channel_axis=-1, convert2ycbcr=True, method="BayesShrink", mode="soft", rescale_sigma=True
    )


def _tv(image: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(image, weight=TV_WEIGHT * sigma, channel_axis=-1)


DENOISERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"nlm": _nlm, "wavelet": _wavelet, "tv": _tv}


def _padded(image: np.ndarray, kernel: np.ndarray, restore_channel: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Restore each channel of `image` reflect-padded by two kernel widths, cropped back: deconvolution by FFT wraps
    around the image's edges, and the padding keeps that outside the photo."""
    pad = 2 * kernel.shape[0]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([restore_channel(padded[..., c]) for c in range(image.shape[2])], -1)
    return np.clip(out[pad:-pad, pad:-pad], 0, 1).astype(np.float32)


def wiener_deblur(image: np.ndarray, kernel: np.ndarray, balance: float = WIENER_BALANCE) -> np.ndarray:
    """Wiener deconvolution of an RGB float image by a known blur kernel (scikit-image's `wiener`)."""
    from skimage.restoration import wiener

    return _padded(image, kernel, lambda channel: wiener(channel, kernel, balance, clip=False))


def richardson_lucy_deblur(
    image: np.ndarray, kernel: np.ndarray, iterations: int = RICHARDSON_LUCY_ITERATIONS
) -> np.ndarray:
    """Richardson-Lucy deconvolution of an RGB float image by a known blur kernel (scikit-image's)."""
    from skimage.restoration import richardson_lucy

    return _padded(
        np.clip(image, 0, 1), kernel, lambda channel: richardson_lucy(channel, kernel, iterations, clip=False)
    )


def median_derain(image: np.ndarray, size: int = MEDIAN_SIZE) -> np.ndarray:
    """A size x size median filter on each channel: thin bright streaks are outvoted by their surroundings."""
    from scipy.ndimage import median_filter

    return median_filter(image, size=(size, size, 1), mode="reflect").astype(np.float32)


@dataclass(frozen=True)
class Reference:
    """A method a user would try before a network, scored beside the models on the task's test pairs: `restore`
    maps (test image name, degraded image) to the restored image."""

    label: str
    note: str
    restore: Callable[[str, np.ndarray], np.ndarray]


def task_references(task: TaskData, split: str = "test") -> list[Reference]:
    """The references for this task's pairs of `split`: always the degraded input itself; on the photo catalogue,
    the classical method of its degradation (non-local means told sigma; Wiener and Richardson-Lucy told each
    photo's true kernel; a median filter)."""
    references = [Reference("degraded input", "the input as it is", lambda name, image: image)]
    if task.source != "catalogue":
        return references
    if task.degradation == "gaussian_noise":
        sigma = task.sigma / 255.0
        references.append(
            Reference("non-local means", f"scikit-image, told sigma {task.sigma:g}", lambda _, x: _nlm(x, sigma))
        )
    elif task.degradation == "motion_blur":
        from edgeens.data.photos import true_shakes

        shakes = true_shakes(split)
        references += [
            Reference("Wiener", NON_BLIND, lambda name, x: wiener_deblur(x, shakes[name].kernel)),
            Reference("Richardson-Lucy", NON_BLIND, lambda name, x: richardson_lucy_deblur(x, shakes[name].kernel)),
        ]
    elif task.degradation == "rain_streaks":
        note = f"{MEDIAN_SIZE}x{MEDIAN_SIZE}, per channel"
        references.append(Reference("median filter", note, lambda _, x: median_derain(x)))
    return references


def classical_restorer(name: str, sigma: float) -> Restorer:
    """A scikit-image denoiser for Gaussian noise of `sigma` (0-255 scale), restoring whole images (no tiles)."""
    if name not in DENOISERS:
        raise ValueError(f"unknown baseline {name!r}; choose from: {', '.join(DENOISERS)}")
    if sigma <= 0:
        raise ValueError(f"the classical denoisers need the noise level: sigma must be > 0, got {sigma}")
    denoise = DENOISERS[name]

    def run(x: Tensor) -> Tensor:
        image = x[0].permute(1, 2, 0).numpy().astype(np.float64)
        out = denoise(image, sigma / 255.0).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]

    return Restorer(f"{name} (scikit-image)", run, None, tiles=False)
