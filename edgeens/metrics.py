"""PSNR and SSIM with BasicSR's conventions (`basicsr/metrics/psnr_ssim.py`), the ones restoration papers report.

Images are HWC (or HW) arrays or tensors in [0, data_range]. As in BasicSR, they are rescaled to [0, 255] and
computed in float64; `crop_border` pixels are removed from every edge before anything else; `test_y_channel`
compares the unrounded BT.601 luma Y in [16, 235]; SSIM uses an 11x11 Gaussian window (sigma 1.5) with 'valid'
filtering and averages the per-channel scores. Inputs are RGB (BasicSR reads BGR; `channel_order` says which).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ChannelOrder = Literal["RGB", "BGR"]
# Y = 16 + 65.481 R + 128.553 G + 24.966 B, with R, G, B in [0, 1] and Y on the 0-255 scale.
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966])


def _prepare(
    img: object, ref: object, crop_border: int, test_y_channel: bool, data_range: float, channel_order: ChannelOrder
) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_array(img, "img"), _as_array(ref, "ref")
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if crop_border < 0 or 2 * crop_border >= min(a.shape[:2]):
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive (1.0 for [0, 1] floats, 255 for uint8), got {data_range}")
    a, b = (x.astype(np.float64) * (255.0 / data_range) for x in (a, b))
    if crop_border:
        a, b = (x[crop_border:-crop_border, crop_border:-crop_border] for x in (a, b))
    if test_y_channel and a.shape[2] == 3:
        weights = _Y_WEIGHTS_RGB if channel_order == "RGB" else _Y_WEIGHTS_RGB[::-1]
        a, b = ((x / 255.0) @ weights[:, None] + 16.0 for x in (a, b))
    return a, b


def _as_array(x: object, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"{name} must be HxW or HxWxC with 1 or 3 channels, got shape {array.shape}")
    return array


def psnr(
    img: object,
    ref: object,
    crop_border: int = 0,
    test_y_channel: bool = False,
    data_range: float = 1.0,
    channel_order: ChannelOrder = "RGB",
) -> float:
    """PSNR in dB (inf for identical images), as BasicSR's `calculate_psnr`."""
    a, b = _prepare(img, ref, crop_border, test_y_channel, data_range, channel_order)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering of an HxW array, keeping only positions where the window fits ('valid')."""
    rows = sliding_window_view(img, g.size, axis=0) @ g
    return sliding_window_view(rows, g.size, axis=1) @ g


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(
    img: object,
    ref: object,
    crop_border: int = 0,
    test_y_channel: bool = False,
    data_range: float = 1.0,
    channel_order: ChannelOrder = "RGB",
) -> float:
    """SSIM as BasicSR's `calculate_ssim`: mean over channels of the mean SSIM map."""
    a, b = _prepare(img, ref, crop_border, test_y_channel, data_range, channel_order)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels after cropping, got {a.shape[0]}x{a.shape[1]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))
