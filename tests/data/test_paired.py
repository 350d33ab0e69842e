from __future__ import annotations

import numpy as np
import pytest

from edgeens.data.images import ImageError, write_image
from edgeens.data.paired import DatasetError, PairedImages, find_pairs


def make_folder(root, inputs: list[str], targets: list[str], size=(12, 16)) -> None:
    rng = np.random.default_rng(1)
    for sub, names in (("input", inputs), ("target", targets)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_image(root / sub / name, rng.random((*size, 3)))


def test_pairs_by_stem_then_by_natural_order(tmp_path) -> None:
    make_folder(tmp_path / "a", ["2.png", "10.png", "1.png"], ["1.png", "2.png", "10.png"])
    assert [(p.name, q.name) for p, q in find_pairs(tmp_path / "a")] == [
        ("1.png", "1.png"),
        ("2.png", "2.png"),
        ("10.png", "10.png"),
    ]
    make_folder(tmp_path / "b", ["rain-2.png", "rain-10.png"], ["norain-2.png", "norain-10.png"])
    assert [(p.name, q.name) for p, q in find_pairs(tmp_path / "b")] == [
        ("rain-2.png", "norain-2.png"),
        ("rain-10.png", "norain-10.png"),
    ]


def test_missing_targets_are_named(tmp_path) -> None:
    make_folder(tmp_path, ["1.png", "2.png", "3.png"], ["1.png"])
    with pytest.raises(DatasetError, match=r"2 input\(s\) have no target of the same name \(e.g. 2.png, 3.png;"):
        find_pairs(tmp_path)


def test_names_that_do_not_match_are_refused_not_paired_by_order(tmp_path) -> None:
    # The campaign's case: inputs 000-003, targets gt_006-gt_009; the same counts, but no picture in common.
    make_folder(tmp_path / "a", [f"{n:03d}.png" for n in range(4)], [f"gt_{n:03d}.png" for n in range(6, 10)])
    with pytest.raises(DatasetError, match=r"e.g. 000.png, 001.png, 002.png; targets without an input: gt_006.png"):
        find_pairs(tmp_path / "a")
    # A fixed prefix or suffix on either side is a naming convention, not a mismatch: 0012_blur with 0012_gt.
    make_folder(tmp_path / "b", ["7_blur.png", "12_blur.png"], ["gt-12.png", "gt-7.png"])
    assert names(find_pairs(tmp_path / "b")) == [("7_blur.png", "gt-7.png"), ("12_blur.png", "gt-12.png")]


def test_empty_and_misshapen_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        find_pairs(tmp_path / "nothing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="needs an input folder"):
        find_pairs(tmp_path / "flat")
    (tmp_path / "empty" / "input").mkdir(parents=True)
    (tmp_path / "empty" / "target").mkdir()
    with pytest.raises(DatasetError, match="holds no input images"):
        find_pairs(tmp_path / "empty")


def test_mismatched_sizes_name_both_files(tmp_path) -> None:
    make_folder(tmp_path, ["1.png"], [], size=(12, 16))
    make_folder(tmp_path, [], ["1.png"], size=(12, 18))
    with pytest.raises(ImageError, match="is 16x12 but its target .*1.png is 18x12"):
        PairedImages(find_pairs(tmp_path)).read(0)


def test_sampled_crops_are_aligned_and_shaped(tmp_path) -> None:
    make_folder(tmp_path, ["1.png", "2.png"], ["1.png", "2.png"], size=(20, 24))
    data = PairedImages(find_pairs(tmp_path))
    # make targets a known function of inputs so alignment is checkable after crop + augmentation
    read = data.read
    data.read = lambda index: (read(index)[0], 1 - read(index)[0])
    lq, gt = data.sample(patch=8, batch=5, rng=np.random.default_rng(0))
    assert lq.shape == gt.shape == (5, 3, 8, 8) and lq.dtype == np.float32
    assert np.allclose(gt, 1 - lq)
    big_lq, _ = data.sample(patch=32, batch=1, rng=np.random.default_rng(0))  # larger than the image: reflect pad
    assert big_lq.shape == (1, 3, 32, 32)


def touch_images(paths) -> None:
    rng = np.random.default_rng(2)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, rng.random((8, 8, 3)))


def names(pairs) -> list[tuple[str, str]]:
    return [(a.name, b.name) for a, b in pairs]


def test_gopro_original_layout(tmp_path) -> None:
    root = tmp_path / "GOPRO_Large" / "test"
    touch_images(
        [
            root / s / d / f"{i:06d}.png"
            for s in ("GOPR0384_11_00", "GOPR0385_11_01")
            for d in ("blur", "sharp")
            for i in (1, 2)
        ]
    )
    pairs = find_pairs(tmp_path / "GOPRO_Large")
    assert len(pairs) == 4 and all(
        a.parent.name == "blur" and b.parent.name == "sharp" and a.name == b.name for a, b in pairs
    )


def test_hide_layout_matches_gt_by_name(tmp_path) -> None:
    touch_images(
        [
            tmp_path / "test" / "test-close-ups" / "a.png",
            tmp_path / "test" / "test-long-shot" / "b.png",
            tmp_path / "GT" / "a.png",
            tmp_path / "GT" / "b.png",
        ]
    )
    assert sorted(names(find_pairs(tmp_path))) == [("a.png", "a.png"), ("b.png", "b.png")]


def test_realblur_list_file(tmp_path) -> None:
    touch_images([tmp_path / "scene001" / "blur" / "blur_1.png", tmp_path / "scene001" / "gt" / "gt_1.png"])
    (tmp_path / "RealBlur_J_test_list.txt").write_text("scene001/gt/gt_1.png scene001/blur/blur_1.png\n")
    assert names(find_pairs(tmp_path)) == [("blur_1.png", "gt_1.png")]
    (tmp_path / "RealBlur_J_train_list.txt").write_text("scene001/gt/gt_9.png scene001/blur/blur_9.png\n")
    with pytest.raises(DatasetError, match="several pair lists"):
        find_pairs(tmp_path)
    with pytest.raises(DatasetError, match="gt_9.png does not exist"):
        find_pairs(tmp_path / "RealBlur_J_train_list.txt")


def test_rain100_and_sidd_and_dpdd_layouts(tmp_path) -> None:
    touch_images([tmp_path / "rain" / "rainy" / "rain-1.png", tmp_path / "rain" / "norain-1.png"])
    assert names(find_pairs(tmp_path / "rain")) == [("rain-1.png", "norain-1.png")]
    scene = tmp_path / "sidd" / "Data" / "0001_001_S6_00100_00060_3200_L"
    touch_images([scene / "0001_NOISY_SRGB_010.PNG", scene / "0001_GT_SRGB_010.PNG"])
    assert names(find_pairs(tmp_path / "sidd")) == [("0001_NOISY_SRGB_010.PNG", "0001_GT_SRGB_010.PNG")]
    touch_images(
        [tmp_path / "dpdd" / "test_c" / "source" / "1P0A1.png", tmp_path / "dpdd" / "test_c" / "target" / "1P0A3.png"]
    )
    assert names(find_pairs(tmp_path / "dpdd")) == [("1P0A1.png", "1P0A3.png")]


def test_sidd_validation_blocks(tmp_path) -> None:
    from scipy.io import savemat

    from edgeens.data.paired import sidd_validation_blocks

    noisy = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    with pytest.raises(DatasetError, match="ValidationGtBlocksSrgb.mat does not exist"):
        sidd_validation_blocks(tmp_path)
    savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": noisy})
    lq, gt = sidd_validation_blocks(tmp_path)
    assert lq.shape == (6, 8, 8, 3) and lq.dtype == np.float32 and np.allclose(lq[4], noisy[1, 1] / 255.0)


def test_large_sets_are_read_lazily_and_still_checked(tmp_path) -> None:
    make_folder(tmp_path, ["1.png", "2.png"], ["1.png"], size=(12, 16))
    make_folder(tmp_path, [], ["2.png"], size=(12, 18))
    data = PairedImages(find_pairs(tmp_path))  # nothing read yet, so no error yet
    assert not data._cache and len(data) == 2
    with pytest.raises(ImageError, match="pairs must have the same size"):
        for seed in range(10):
            data.sample(patch=8, batch=2, rng=np.random.default_rng(seed))


def test_dpdd_dual_pixel_pairs_give_six_channel_inputs(tmp_path) -> None:
    root = tmp_path / "dpdd"
    touch_images([root / f"test_{view}" / "source" / f"1P0A{n}.png" for view in "clr" for n in (1, 2)])
    touch_images([root / "test_c" / "target" / f"1P0A{n}.png" for n in (3, 4)])
    pairs = find_pairs(root, dual_pixel=True)
    assert [(lq[0].parent.parent.name, lq[1].parent.parent.name, gt.name) for lq, gt in pairs] == [
        ("test_l", "test_r", "1P0A3.png"),
        ("test_l", "test_r", "1P0A4.png"),
    ]
    lq, gt = PairedImages(pairs).sample(8, 2, np.random.default_rng(0))
    assert lq.shape == (2, 6, 8, 8) and gt.shape == (2, 3, 8, 8)
    (root / "test_r" / "source" / "1P0A2.png").unlink()
    with pytest.raises(DatasetError, match="1 right views"):
        find_pairs(root, dual_pixel=True)
    prepared = tmp_path / "restormer"
    touch_images([prepared / d / "a.png" for d in ("inputL", "inputR", "target")])
    assert len(find_pairs(prepared, dual_pixel=True)) == 1
    with pytest.raises(DatasetError, match="not a DPDD dual-pixel folder"):
        find_pairs(tmp_path / "restormer" / "target", dual_pixel=True)
