from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from edgeens.metrics import psnr, ssim


@pytest.fixture()
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ref = rng.random((40, 52, 3))
    img = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    return img, ref


def skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range, channel_axis=-1
    )


def test_psnr_matches_scikit_image(pair) -> None:
    img, ref = pair
    assert psnr(img, ref) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=1.0), abs=1e-9)
    assert psnr(img * 255, ref * 255, data_range=255) == pytest.approx(psnr(img, ref), abs=1e-9)


def test_ssim_matches_scikit_image_gaussian_ssim(pair) -> None:
    img, ref = pair
    assert ssim(img, ref) == pytest.approx(skimage_ssim(img * 255, ref * 255, 255), abs=1e-9)
    gray = ssim(img[..., 0], ref[..., 0])
    assert gray == pytest.approx(skimage_ssim(img[..., :1] * 255, ref[..., :1] * 255, 255), abs=1e-9)


def test_y_channel_uses_unrounded_bt601_luma(pair) -> None:
    img, ref = pair
    y_img, y_ref = rgb2ycbcr(img)[..., 0], rgb2ycbcr(ref)[..., 0]  # Y in [16, 235], float
    assert psnr(img, ref, test_y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(y_ref, y_img, data_range=255), abs=1e-9
    )
    assert ssim(img, ref, test_y_channel=True) == pytest.approx(
        skimage_ssim(y_img[..., None], y_ref[..., None], 255), abs=1e-9
    )
    bgr = psnr(img[..., ::-1], ref[..., ::-1], test_y_channel=True, channel_order="BGR")
    assert bgr == pytest.approx(psnr(img, ref, test_y_channel=True), abs=1e-12)


def test_crop_border_removes_edges_first(pair) -> None:
    img, ref = pair
    img = img.copy()
    img[:4] = 1 - ref[:4]  # ruin a 4-pixel band at the top
    assert psnr(img, ref, crop_border=4) == pytest.approx(psnr(img[4:-4, 4:-4], ref[4:-4, 4:-4]), abs=1e-12)
    assert psnr(img, ref, crop_border=4) > psnr(img, ref) + 3


def test_identical_images_and_tensors() -> None:
    x = torch.rand(16, 16, 3)
    assert psnr(x, x) == float("inf")
    assert ssim(x, x) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (np.zeros((8, 8, 3)), np.zeros((8, 9, 3)), {}, "same shape"),
        (np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), {"crop_border": 4}, "leaves nothing"),
        (np.zeros((8, 8, 4)), np.zeros((8, 8, 4)), {}, "1 or 3 channels"),
        (np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), {"data_range": 0}, "data_range"),
    ],
)
def test_bad_inputs(a, b, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        psnr(a, b, **kwargs)
