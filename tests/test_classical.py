from __future__ import annotations

import numpy as np
import pytest

from edgeens.classical import median_derain, richardson_lucy_deblur, task_references, wiener_deblur
from edgeens.data.bundled import bundled_photo
from edgeens.data.synthetic import MotionBlur, degrade
from edgeens.data.task import TaskData
from edgeens.metrics import psnr


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return bundled_photo("astronaut")[100:196, 150:246]


@pytest.mark.parametrize("deblur", [wiener_deblur, richardson_lucy_deblur])
def test_non_blind_deconvolution_told_the_kernel_beats_the_blurred_input(photo, deblur) -> None:
    rng = np.random.default_rng([0, 5])
    shake = MotionBlur.draw(rng)
    blurred = shake.apply(photo, rng)
    restored = deblur(blurred, shake.kernel)
    assert restored.shape == photo.shape and restored.dtype == np.float32
    assert psnr(restored, photo) > psnr(blurred, photo) + 1.0
    # told a wrong kernel (another shake) it does worse than told the right one
    wrong = MotionBlur.draw(np.random.default_rng([0, 6])).kernel
    assert psnr(deblur(blurred, wrong), photo) < psnr(restored, photo)


def test_a_median_filter_removes_rain_streaks() -> None:
    smooth = bundled_photo("astronaut")[:128, :128]  # the median filter's home ground: little texture to lose
    rainy = degrade(smooth, "rain_streaks", np.random.default_rng([0, 3]))
    assert psnr(median_derain(rainy), smooth) > psnr(rainy, smooth) + 3.0


def test_each_catalogue_task_has_its_references_and_a_users_data_the_input_alone() -> None:
    labels = {
        kind: [r.label for r in task_references(TaskData("catalogue", kind))]
        for kind in ("gaussian_noise", "motion_blur", "rain_streaks")
    }
    assert labels == {
        "gaussian_noise": ["degraded input", "non-local means"],
        "motion_blur": ["degraded input", "Wiener", "Richardson-Lucy"],
        "rain_streaks": ["degraded input", "median filter"],
    }
    wiener = task_references(TaskData("catalogue", "motion_blur"))[1]
    assert wiener.note == "non-blind: knows the kernel"
    assert [r.label for r in task_references(TaskData("folders"))] == ["degraded input"]


@pytest.mark.parametrize("kind", ["gaussian_noise", "motion_blur", "rain_streaks"])
def test_every_reference_restores_a_test_photo_by_its_name(kind) -> None:
    from edgeens.data.photos import CATALOGUE

    clean = bundled_photo("astronaut")[:64, :64]
    degraded = degrade(clean, kind, np.random.default_rng(0))
    name = next(p.name for p in CATALOGUE if p.split == "test")
    for reference in task_references(TaskData("catalogue", kind)):
        out = reference.restore(name, degraded)
        assert out.shape == clean.shape and np.isfinite(out).all(), reference.label


def test_the_non_blind_references_are_told_each_test_photos_own_kernel() -> None:
    from edgeens.data.photos import CATALOGUE, true_shakes

    shakes = true_shakes("test")
    assert list(shakes) == [p.name for p in CATALOGUE if p.split == "test"]
    kernels = [s.kernel for s in shakes.values()]
    assert not np.array_equal(kernels[0], kernels[1])
    # the shake of test photo i is the one degraded_pairs drew for it
    assert np.array_equal(kernels[2], MotionBlur.draw(np.random.default_rng([0, 2])).kernel)
