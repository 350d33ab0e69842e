"""Classical denoisers from scikit-image as restorers, so `edgeens bench --baseline` puts them beside the models on
the same pairs, with the same PSNR / SSIM code and the same timing.

Settings: non-local means as scikit-image's own example sets it (fast mode, 5x5 patches, search distance 6,
h = 0.8 sigma); wavelet shrinkage with BayesShrink in YCbCr; total variation (Chambolle) with weight 0.9 sigma,
chosen on the catalogue's validation photos at sigma 25 (weights 0.5-1.5 sigma in steps of 0.1; never on test).
Each is told the true noise level, as a classical method in a denoising benchmark is."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from edgeens.restore import Restorer

TV_WEIGHT = 0.9  # x sigma; see the module docstring


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


BASELINES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"nlm": _nlm, "wavelet": _wavelet, "tv": _tv}


def classical_restorer(name: str, sigma: float) -> Restorer:
    """A scikit-image denoiser for Gaussian noise of `sigma` (0-255 scale), restoring whole images (no tiles)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from: {', '.join(BASELINES)}")
    if sigma <= 0:
        raise ValueError(f"the classical denoisers need the noise level: sigma must be > 0, got {sigma}")
    denoise = BASELINES[name]

    def run(x: Tensor) -> Tensor:
        image = x[0].permute(1, 2, 0).numpy().astype(np.float64)
        out = denoise(image, sigma / 255.0).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]

    return Restorer(f"{name} (scikit-image)", run, None, tiles=False)
