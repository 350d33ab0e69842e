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
    with pytest.raises(DatasetError, match=r"no target for 2 input\(s\) \(e.g. 2.png, 3.png\)"):
        find_pairs(tmp_path)


def test_empty_and_misshapen_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        find_pairs(tmp_path / "nothing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="needs an input folder"):
        find_pairs(tmp_path / "flat")
    (tmp_path / "empty" / "input").mkdir(parents=True)
    (tmp_path / "empty" / "target").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        find_pairs(tmp_path / "empty")


def test_mismatched_sizes_name_both_files(tmp_path) -> None:
    make_folder(tmp_path, ["1.png"], [], size=(12, 16))
    make_folder(tmp_path, [], ["1.png"], size=(12, 18))
    with pytest.raises(ImageError, match="is 16x12 but its target .*1.png is 18x12"):
        PairedImages(find_pairs(tmp_path))


def test_sampled_crops_are_aligned_and_shaped(tmp_path) -> None:
    make_folder(tmp_path, ["1.png", "2.png"], ["1.png", "2.png"], size=(20, 24))
    data = PairedImages(find_pairs(tmp_path))
    # make targets a known function of inputs so alignment is checkable after crop + augmentation
    data.images = [(lq, 1 - lq) for lq, _ in data.images]
    lq, gt = data.sample(patch=8, batch=5, rng=np.random.default_rng(0))
    assert lq.shape == gt.shape == (5, 3, 8, 8) and lq.dtype == np.float32
    assert np.allclose(gt, 1 - lq)
    big_lq, _ = data.sample(patch=32, batch=1, rng=np.random.default_rng(0))  # larger than the image: reflect pad
    assert big_lq.shape == (1, 3, 32, 32)
