from __future__ import annotations

import numpy as np
import pytest

from edgeens.data.bundled import PHOTOS, VALIDATION, bundled_photo, bundled_split
from edgeens.data.synthetic import degrade, gaussian_noise, motion_blur_kernel


def test_bundled_photos_are_real_colour_images_offline() -> None:
    for name in PHOTOS:
        image = bundled_photo(name)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.02
    assert set(bundled_split("val")) == set(VALIDATION)
    assert not set(bundled_split("train")) & set(VALIDATION)


def test_gaussian_noise_has_the_requested_sigma_and_is_reproducible() -> None:
    clean = np.full((64, 64, 3), 0.5, np.float32)
    noisy = gaussian_noise(clean, 25, np.random.default_rng(0))
    assert abs((noisy - clean).std() * 255 - 25) < 0.5
    assert np.array_equal(noisy, gaussian_noise(clean, 25, np.random.default_rng(0)))


def test_motion_blur_kernel_is_normalised_and_not_a_delta() -> None:
    k = motion_blur_kernel(15, np.random.default_rng(3))
    assert k.shape == (15, 15) and abs(k.sum() - 1) < 1e-5 and k.max() < 0.5


@pytest.mark.parametrize("kind", ["gaussian_noise", "motion_blur", "rain_streaks"])
def test_every_degradation_changes_the_photo_but_keeps_its_shape(kind: str) -> None:
    clean = bundled_photo("astronaut")[:64, :64]
    out = degrade(clean, kind, np.random.default_rng(0))
    assert out.shape == clean.shape and out.dtype == np.float32
    assert 0.005 < np.abs(out - clean).mean() < 0.2


def test_unknown_degradation() -> None:
    with pytest.raises(ValueError, match="gaussian_noise, motion_blur, rain_streaks"):
        degrade(np.zeros((8, 8, 3), np.float32), "snow", np.random.default_rng(0))
