from __future__ import annotations

import numpy as np
import pytest

from edgeens.data.bundled import PHOTOS, VALIDATION, bundled_photo, bundled_split
from edgeens.data.synthetic import MotionBlur, blur, degrade, gaussian_noise, motion_blur_kernel


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
    k = motion_blur_kernel(15, np.random.default_rng(3), length=9)
    assert k.shape == (15, 15) and abs(k.sum() - 1) < 1e-5 and k.max() < 0.5
    with pytest.raises(ValueError, match="odd"):
        motion_blur_kernel(14, np.random.default_rng(3))


def test_straight_and_curved_shakes_differ_and_the_length_is_the_extent() -> None:
    straight = motion_blur_kernel(21, np.random.default_rng(5), length=15, curvature=0.0)
    rows, cols = np.nonzero(straight > 1e-4)
    assert 13 <= max(np.ptp(rows), np.ptp(cols)) <= 17  # a straight line of 15 px spans about 15 px
    curved = motion_blur_kernel(21, np.random.default_rng(5), length=15, curvature=0.2)
    assert np.abs(curved - straight).sum() > 0.2


def test_shakes_vary_from_image_to_image() -> None:
    shakes = [MotionBlur.draw(np.random.default_rng([0, i])) for i in range(8)]
    extents = {int((s.kernel > 1e-3).sum()) for s in shakes}
    assert len(extents) >= 5 and len({round(s.noise_sigma, 3) for s in shakes}) == 8
    assert all(0.5 <= s.noise_sigma <= 2.0 for s in shakes)


@pytest.mark.parametrize("kind", ["gaussian_noise", "motion_blur", "rain_streaks"])
def test_every_degradation_is_reproducible_from_its_seed(kind: str) -> None:
    clean = bundled_photo("astronaut")[:96, :96]
    first, again = (degrade(clean, kind, np.random.default_rng([7, 1])) for _ in range(2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, degrade(clean, kind, np.random.default_rng([7, 2])))


def test_a_non_blind_baseline_redraws_the_true_kernel_from_the_seed() -> None:
    clean = bundled_photo("astronaut")[:96, :96]
    blurred = degrade(clean, "motion_blur", np.random.default_rng([0, 3]))
    shake = MotionBlur.draw(np.random.default_rng([0, 3]))
    # the image minus the redrawn kernel's blur is the camera noise alone (clipping aside)
    residual = (blurred - np.clip(blur(clean, shake.kernel), 0, 1)) * 255
    assert abs(residual.std() - shake.noise_sigma) < 0.2


def test_rain_varies_in_density_and_only_brightens() -> None:
    clean = np.full((128, 128, 3), 0.3, np.float32)
    rainy = [degrade(clean, "rain_streaks", np.random.default_rng([0, i])) for i in range(6)]
    covered = [float((r > 0.31).mean()) for r in rainy]
    assert max(covered) > 2 * min(covered)
    assert all(r.min() >= 0.3 - 1e-6 and r.max() <= 1 for r in rainy)


@pytest.mark.parametrize("kind", ["gaussian_noise", "motion_blur", "rain_streaks"])
def test_every_degradation_changes_the_photo_but_keeps_its_shape(kind: str) -> None:
    clean = bundled_photo("astronaut")[:64, :64]
    out = degrade(clean, kind, np.random.default_rng(0))
    assert out.shape == clean.shape and out.dtype == np.float32
    assert 0.005 < np.abs(out - clean).mean() < 0.2


def test_unknown_degradation() -> None:
    with pytest.raises(ValueError, match="gaussian_noise, motion_blur, rain_streaks"):
        degrade(np.zeros((8, 8, 3), np.float32), "snow", np.random.default_rng(0))
