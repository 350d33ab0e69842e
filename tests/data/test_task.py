from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeens.data.images import ImageError
from edgeens.data.paired import DatasetError
from edgeens.data.task import DATA_FILE, DataMismatchError, DataRequest, TaskData, open_task
from tests.data.layouts import LAYOUTS, OWN_SPLIT, make_layout, write_pair


def files(task: TaskData, split: str) -> set[str]:
    return {str(lq[0] if isinstance(lq, tuple) else lq) for lq, _ in task.splits[split]}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_three_disjoint_splits_recorded_in_the_folder(tmp_path, layout) -> None:
    data = make_layout(tmp_path / "data", layout)
    task = open_task(tmp_path / "run", DataRequest(data), say=lambda _: None)
    assert all(task.splits[s] for s in ("train", "val", "test"))
    assert not files(task, "train") & files(task, "test") and not files(task, "val") & files(task, "test")
    assert not files(task, "train") & files(task, "val")
    if layout in OWN_SPLIT:  # the dataset's test split is the test split; val is cut from its train split
        assert task.split_from["test"] == "the dataset's own test split" and len(task.splits["test"]) == 6
        assert all("test" in name for name in files(task, "test"))
    else:
        assert "seed 0" in task.split_from["test"] and sum(len(task.splits[s]) for s in task.splits) == 6
    record = json.loads((tmp_path / "run" / DATA_FILE).read_text())
    assert record["counts"] == {s: len(task.splits[s]) for s in ("train", "val", "test")}
    assert TaskData.from_record(record) == task  # a reader (and a re-run) sees exactly which files went where
    lq, gt = task.training().sample(16, 2, np.random.default_rng(0))
    assert lq.shape == gt.shape == (2, 3, 16, 16)
    name, lq, gt = next(task.test_pairs())
    assert lq.shape == gt.shape == (64, 80, 3) and name


def test_the_seeded_split_is_reproducible_and_goes_by_scene(tmp_path) -> None:
    data = make_layout(tmp_path / "sidd", "sidd", count=20)  # 20 scene folders: split by scene
    first = open_task(tmp_path / "a", DataRequest(data), say=lambda _: None)
    again = open_task(tmp_path / "b", DataRequest(data), say=lambda _: None)
    other = open_task(tmp_path / "c", DataRequest(data, split_seed=1), say=lambda _: None)
    assert first.splits == again.splits and first.splits["test"] != other.splits["test"]
    assert [len(first.splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert "by scene folder" in first.split_from["test"]
    # The split is the folder's: a re-run reads it from data.json
    assert open_task(tmp_path / "a", DataRequest(data), say=lambda _: None).splits == first.splits


def test_given_val_and_test_folders_are_used_as_they_are(tmp_path) -> None:
    train = make_layout(tmp_path / "train", "restormer", count=4)
    val = make_layout(tmp_path / "val", "restormer", count=2, seed=1)
    test = make_layout(tmp_path / "test", "restormer", count=3, seed=2)
    task = open_task(tmp_path / "run", DataRequest(train, val, test), say=lambda _: None)
    assert [len(task.splits[s]) for s in ("train", "val", "test")] == [4, 2, 3]
    assert task.split_from["test"] == f"--test-data {test.resolve()}"
    assert task.roots["test"] == str(test.resolve())


def test_other_data_in_the_same_folder_is_refused_naming_both(tmp_path) -> None:
    first = make_layout(tmp_path / "first", "restormer")
    second = make_layout(tmp_path / "second", "restormer", count=7, seed=3)
    open_task(tmp_path / "run", DataRequest(first), say=lambda _: None)
    record = (tmp_path / "run" / DATA_FILE).read_text()
    with pytest.raises(DataMismatchError, match=rf"made from paired folders {first.resolve()}.*now asked for .*second"):
        open_task(tmp_path / "run", DataRequest(second), say=lambda _: None)
    with pytest.raises(DataMismatchError, match=r"now asked for the photo catalogue, gaussian_noise \(sigma 25\)"):
        open_task(tmp_path / "run", DataRequest(), say=lambda _: None)
    assert (tmp_path / "run" / DATA_FILE).read_text() == record  # untouched
    # The same files moved elsewhere are the same data (names and sizes): accepted, read from their new place.
    shutil.move(first, tmp_path / "moved")
    said = []
    task = open_task(tmp_path / "run", DataRequest(tmp_path / "moved"), say=said.append)
    assert task.roots["train"] == str((tmp_path / "moved").resolve()) and "new place" in said[0]


def test_synthetic_options_with_a_dataset_are_one_clear_error(tmp_path) -> None:
    data = make_layout(tmp_path / "data", "restormer")
    for request in (DataRequest(data, degradation="motion_blur"), DataRequest(data, sigma=15.0)):
        with pytest.raises(ValueError, match="--degradation/--sigma do not apply"):
            open_task(tmp_path / "run", request)
    with pytest.raises(ValueError, match="give --data too"):
        open_task(tmp_path / "run", DataRequest(test_data=data))
    for sigma in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="--sigma must be a number from 0 to 255"):
            open_task(tmp_path / "run", DataRequest(sigma=sigma))
    assert not (tmp_path / "run").exists()


def bad_dataset(root, problem: str):
    """A restormer-layout dataset of 4 pairs with one problem; returns the file the error must name (or None)."""
    make_layout(root, "restormer", count=4)
    rng = np.random.default_rng(5)
    if problem == "empty":
        shutil.rmtree(root)
        (root / "input").mkdir(parents=True)
        (root / "target").mkdir()
        return None
    if problem == "unmatched":
        (root / "target" / "3.png").rename(root / "target" / "gt_9.png")
        return "3.png"
    if problem == "sizes differ":
        write_pair(root / "input" / "2.png", root / "target" / "x.png", rng, size=(64, 88))
        (root / "target" / "x.png").unlink()
        return root / "input" / "2.png"
    if problem == "truncated":
        path = root / "target" / "1.png"
        path.write_bytes(path.read_bytes()[:200])
        return path
    if problem == "not an image":
        (root / "input" / "0.png").write_text("hello")
        return root / "input" / "0.png"
    if problem == "too small":
        write_pair(root / "input" / "1.png", root / "target" / "1.png", rng, size=(40, 80))
        return root / "target" / "1.png"
    raise ValueError(problem)


@pytest.mark.parametrize("problem", ["empty", "unmatched", "sizes differ", "truncated", "not an image", "too small"])
def test_bad_datasets_are_one_error_naming_the_file_and_nothing_is_written(tmp_path, problem) -> None:
    named = bad_dataset(tmp_path / "data", problem)
    with pytest.raises((DatasetError, ImageError)) as caught:
        open_task(tmp_path / "run", DataRequest(tmp_path / "data", min_side=64), say=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert str(named) in message if named else "holds no input images" in message
    assert not (tmp_path / "run" / DATA_FILE).exists()


def test_grayscale_among_colour_is_converted_and_said_once_16_bit_kept_whole(tmp_path) -> None:
    from PIL import Image

    data = make_layout(tmp_path / "data", "restormer", count=4)
    ramp = (np.arange(64 * 80).reshape(64, 80) * 13 % 65536).astype(np.uint16)  # uses all 16 bits
    for sub in ("input", "target"):
        Image.fromarray(ramp).save(data / sub / "2.png")  # a 16-bit grayscale pair
    said: list[str] = []
    task = open_task(tmp_path / "run", DataRequest(data, min_side=64), say=said.append)
    assert task.gray_files == 2 and len(said) == 1 and "2 grayscale image(s)" in said[0] and "read as RGB" in said[0]
    split, index = next((s, i) for s in task.splits for i, (lq, _) in enumerate(task.splits[s]) if lq.name == "2.png")
    from edgeens.data.paired import PairedImages

    lq, gt = PairedImages(list(task.splits[split])).read(index)
    assert lq.shape == (64, 80, 3) and np.array_equal(lq[..., 0], lq[..., 2])
    assert np.allclose(lq[..., 0] * 65535, ramp, atol=1e-2)  # full depth, not truncated to 8 bits


def test_the_test_split_is_never_sampled_for_training(tmp_path) -> None:
    data = make_layout(tmp_path / "data", "restormer", count=10)
    task = open_task(tmp_path / "run", DataRequest(data), say=lambda _: None)
    training = task.training()
    test = files(task, "test")
    assert test and not {str(lq) for lq, _ in training.pairs} & test
    crops = task.validation_crops()
    assert len(crops) == 2 * len(task.splits["val"])


def test_hide_as_it_ships_splits_by_its_train_and_test_folders_with_gt_beside_them(tmp_path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "HIDE_dataset"
    for n in range(4):
        write_pair(root / "train" / f"{n}.png", root / "GT" / f"{n}.png", rng)
    for n in range(4, 6):
        write_pair(root / "test" / "test-long-shot" / f"{n}.png", root / "GT" / f"{n}.png", rng)
    task = open_task(tmp_path / "run", DataRequest(root), say=lambda _: None)
    assert len(task.splits["test"]) == 2 and all("test" in name for name in files(task, "test"))
    assert len(task.splits["train"]) + len(task.splits["val"]) == 4
