"""The task's data: one description of where a run's train / val / test pairs come from, made once at the entrance
(`open_task`), written into the run folder as `data.json`, and handed to every step.

Three sources:
- `catalogue`: the photo catalogue's fixed split (edgeens.data.photos) with a synthetic degradation: the demo.
- `bundled`: scikit-image's bundled photos with a degradation (train / val only): `edgeens teacher --bundled`.
- `folders`: the user's paired folders, in any layout edgeens.data.paired reads. The dataset's own split is used
  where it has one (`train/` + `test/` subfolders, RealBlur's train and test lists, `--val-data`, `--test-data`);
  the rest is split here with a seed (by scene folder when there are enough of them, so one scene's frames never
  sit on both sides), and every pair's split is recorded. Test pairs are never trained, distilled, searched or
  selected on: only `test_pairs` reads them.

Every image of a new folder source is decoded once before the first step (sizes, bit depth, channels, truncation),
so a bad file is named before any work starts; a re-run of the same folder checks names and sizes only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeens.data.paired import DatasetError, Input, PairedImages, find_pairs
from edgeens.data.synthetic import DEGRADATIONS, SyntheticPairs
from edgeens.files import read_json, writable_folder, write_json

SPLITS = ("train", "val", "test")
DATA_FILE = "data.json"
DATA_FORMAT = 1
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
VAL_FRACTION = TEST_FRACTION = 0.1
MIN_GROUPS = 10  # scene folders needed before the seeded split goes by scene rather than by pair
VALIDATION_IMAGES = 12  # val pairs the search and the fine-tuning's selection crop from (2 crops each)
MIN_EVAL_SIDE = 16  # val and test images: SSIM's window and the U-Net's 8-pixel padding need this much

Pair = tuple[Input, Path]
TrainingPairs = SyntheticPairs | PairedImages  # what a training loop samples crops from (`.sample`)
Say = Callable[[str], None]


class DataMismatchError(DatasetError):
    """A run folder asked to continue with data other than the data it was started with."""


@dataclass(frozen=True)
class DataRequest:
    """The data a command was given: paired folders, or the photos with a synthetic degradation. `min_side`: the
    largest training crop the steps will draw (training images smaller than it are refused, named)."""

    data: Path | None = None
    val_data: Path | None = None
    test_data: Path | None = None
    degradation: str | None = None  # None: gaussian_noise, when no folder is given
    sigma: float | None = None  # None: 25
    split_seed: int = 0
    bundled: bool = False  # without folders: scikit-image's bundled photos instead of the catalogue
    dual_pixel: bool = False  # DPDD's left and right views as the input (6 channels)
    min_side: int = 64

    def check(self) -> None:
        """Refuse contradictory or impossible options before anything is read."""
        if self.data is None:
            if self.val_data is not None or self.test_data is not None:
                raise ValueError("--val-data and --test-data complete a --data folder: give --data too")
            if self.dual_pixel:
                raise ValueError("--dual-pixel trains on DPDD's views: give the dataset folder with --data")
        elif self.degradation is not None or self.sigma is not None:
            raise ValueError(
                "--data is a paired dataset: its inputs are the degraded images, so --degradation/--sigma do not "
                "apply; leave them out (or leave out --data to degrade the photo catalogue)"
            )
        if self.degradation is not None and self.degradation not in DEGRADATIONS:
            raise ValueError(f"unknown --degradation {self.degradation!r}; choose one of: {', '.join(DEGRADATIONS)}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and 0 <= self.sigma <= 255):
            raise ValueError(f"--sigma must be a number from 0 to 255 (the noise level), got {self.sigma}")
        if self.split_seed < 0:
            raise ValueError(f"--split-seed must be 0 or more, got {self.split_seed}")


@dataclass(frozen=True)
class TaskData:
    """Where the train / val / test pairs come from. Pass it to every step; read images only through it."""

    source: str  # "catalogue", "bundled" or "folders"
    degradation: str = "gaussian_noise"
    sigma: float = 25.0
    splits: dict[str, tuple[Pair, ...]] = field(default_factory=dict)  # folders: every pair, by split
    split_from: dict[str, str] = field(default_factory=dict)  # folders: how each split was made
    roots: dict[str, str] = field(default_factory=dict)  # folders: the resolved folder each split was read from
    fingerprint: str = ""  # folders: sha256 of every split's relative names and byte sizes
    gray_files: int = 0  # folders: grayscale files read as RGB
    dual_pixel: bool = False

    @property
    def synthetic(self) -> bool:
        return self.source != "folders"

    def describe(self) -> str:
        """One line for logs and reports: what the pairs are."""
        level = f" (sigma {self.sigma:g})" if self.degradation == "gaussian_noise" else ""
        if self.source == "catalogue":
            return f"the photo catalogue, {self.degradation}{level}"
        if self.source == "bundled":
            return f"scikit-image's bundled photos, {self.degradation}{level}"
        counts = " / ".join(f"{len(self.splits[s])} {s}" for s in SPLITS)
        return f"paired folders {', '.join(sorted(set(self.roots.values())))} ({counts} pairs)"

    # --- what the steps read ---------------------------------------------------------------------------------------

    def training(self) -> TrainingPairs:
        """The training pairs as a sampler of random crops (`.sample(patch, batch, rng)`)."""
        if self.source == "folders":
            return PairedImages(list(self.splits["train"]))
        if self.source == "bundled":
            from edgeens.data.bundled import bundled_split

            return SyntheticPairs(list(bundled_split("train").values()), self.degradation, self.sigma)
        from edgeens.data.photos import training_photos

        return SyntheticPairs(training_photos(), self.degradation, self.sigma)

    def calibration_inputs(self, height: int, width: int, count: int = 16, seed: int = 0) -> list[np.ndarray]:
        """`count` degraded (1, C, height, width) float32 crops of the training split, seeded: what post-training
        quantization calibrates its activation ranges on (never the test photos, whose scores it would flatter)."""
        if count < 1:
            raise ValueError(f"calibration needs at least one image, got count={count}")
        pairs = self.training()
        rng = np.random.default_rng(seed)
        side = max(height, width)
        inputs = []
        for _ in range(count):
            lq, _ = pairs.sample(side, 1, rng)
            inputs.append(np.ascontiguousarray(lq[:, :, :height, :width]))
        return inputs

    def validation_crops(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fixed (degraded, clean) crops of the val split: the search's objective and the fine-tuning's selection."""
        if self.source == "folders":
            return _diagonal_crops(PairedImages(list(self.splits["val"][:VALIDATION_IMAGES])))
        if self.source == "bundled":
            return bundled_validation(self.degradation, self.sigma)
        from edgeens.data.photos import validation_crops

        return validation_crops(self.degradation, self.sigma)

    def teacher_validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """What a teacher is validated on: the catalogue's whole val photos, the bundled photos' held-out crops, or
        the folders' val crops."""
        if self.source == "catalogue":
            from edgeens.data.photos import degraded_pairs

            return list(degraded_pairs("val", self.degradation, self.sigma).values())
        if self.source == "bundled":
            return bundled_validation(self.degradation, self.sigma)
        return self.validation_crops()

    def test_pairs(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, degraded, clean) whole test images, read one at a time: nothing else reads the test split."""
        if self.source == "bundled":
            raise DatasetError("the bundled photos have no test split; use the photo catalogue or --data")
        if self.source == "catalogue":
            from edgeens.data.photos import degraded_pairs

            for name, (lq, gt) in degraded_pairs("test", self.degradation, self.sigma).items():
                yield name, lq, gt
            return
        images = PairedImages(list(self.splits["test"]), cache_bytes=0)
        for index, (lq_path, _) in enumerate(images.pairs):
            yield _pair_name(lq_path, self.roots["test"]), *images.read(index)

    @property
    def test_count(self) -> int:
        if self.source == "folders":
            return len(self.splits["test"])
        from edgeens.data.photos import CATALOGUE

        return sum(p.split == "test" for p in CATALOGUE)

    def report_crop(self, size: int = 192) -> tuple[str, np.ndarray, np.ndarray]:
        """(name, degraded, clean): the crop the report shows restored side by side, of a test image: the
        catalogue's boats (where a blotch or lost detail shows at once), else the first test image's centre."""
        if self.source == "catalogue":
            from edgeens.data.photos import degraded_pairs

            name = "plasma-EveningGlow"
            lq, gt = degraded_pairs("test", self.degradation, self.sigma)[name]
            top, left = (160, 240) if gt.shape[0] >= 352 and gt.shape[1] >= 432 else (None, None)
        else:
            name, lq, gt = next(self.test_pairs())
            top = left = None
        h, w = (min(size, s) // 8 * 8 for s in gt.shape[:2])
        if top is None:
            top, left = (gt.shape[0] - h) // 2, (gt.shape[1] - w) // 2
        return name, *(np.ascontiguousarray(a[top : top + h, left : left + w]) for a in (lq, gt))

    def identity(self) -> dict[str, object]:
        """What a step's outputs were made from (features, trial logs): a later request must match it."""
        if self.synthetic:  # the keys earlier run folders recorded, so they resume
            return {"degradation": self.degradation, "sigma": self.sigma}
        return {"data": self.fingerprint}

    # --- data.json -------------------------------------------------------------------------------------------------

    def record(self) -> dict[str, object]:
        record: dict[str, object] = {"format": DATA_FORMAT, "source": self.source}
        if self.synthetic:
            return record | {"degradation": self.degradation, "sigma": self.sigma}
        return record | {
            "roots": self.roots,
            "split_from": self.split_from,
            "counts": {s: len(self.splits[s]) for s in SPLITS},
            "fingerprint": self.fingerprint,
            "gray_files": self.gray_files,
            "dual_pixel": self.dual_pixel,
            "splits": {
                s: [[_relative(lq, self.roots[s]), _relative(gt, self.roots[s])] for lq, gt in self.splits[s]]
                for s in SPLITS
            },
        }

    @classmethod
    def from_record(cls, record: dict) -> TaskData:
        if record.get("source") != "folders":
            return cls(record.get("source", "catalogue"), record["degradation"], float(record["sigma"]))
        roots = record["roots"]
        splits = {
            s: tuple((_absolute(lq, roots[s]), Path(roots[s]) / gt) for lq, gt in record["splits"][s]) for s in SPLITS
        }
        return cls(
            "folders",
            splits=splits,
            split_from=record["split_from"],
            roots=roots,
            fingerprint=record["fingerprint"],
            gray_files=record.get("gray_files", 0),
            dual_pixel=record.get("dual_pixel", False),
        )


def bundled_validation(
    degradation: str, sigma: float, size: int = 128, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (degraded, clean) centre crops of the held-out bundled photographs."""
    from edgeens.data.bundled import bundled_split
    from edgeens.data.synthetic import degrade

    rng = np.random.default_rng(seed)
    pairs = []
    for image in bundled_split("val").values():
        h, w = image.shape[:2]
        clean = np.ascontiguousarray(image[(h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2])
        pairs.append((degrade(clean, degradation, rng, sigma), clean))
    return pairs


def _diagonal_crops(images: PairedImages, size: int = 128, per_image: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """`per_image` crops of each pair along its diagonal (as the catalogue's validation crops), at most `size`."""
    crops = []
    for index in range(len(images)):
        lq, gt = images.read(index)
        h, w = (min(size, s) // 8 * 8 for s in gt.shape[:2])
        for j in range(1, per_image + 1):
            top, left = (gt.shape[0] - h) * j // (per_image + 1), (gt.shape[1] - w) * j // (per_image + 1)
            crops.append(tuple(np.ascontiguousarray(a[top : top + h, left : left + w]) for a in (lq, gt)))
    return crops


def _first(lq: Input) -> Path:
    return lq[0] if isinstance(lq, tuple) else lq


def _relative(path: Input, root: str) -> str | list[str]:
    if isinstance(path, tuple):
        return [str(Path(p).relative_to(root)) for p in path]
    return str(Path(path).relative_to(root))


def _absolute(path: str | list[str], root: str) -> Input:
    return tuple(Path(root) / p for p in path) if isinstance(path, list) else Path(root) / path


def _pair_name(lq: Input, root: str) -> str:
    return str(_first(lq).relative_to(root))


# --- the entrance --------------------------------------------------------------------------------------------------


def open_task(folder: Path, request: DataRequest, say: Say = print) -> TaskData:
    """The task of the run (or step) folder `folder`: made from `request` and written as `folder/data.json`, or,
    when the folder has one, read from it after checking that `request` names the same data (same files and sizes);
    other data is refused with both named instead of being mixed into the folder's results."""
    request.check()
    task = _describe_request(request)
    path = Path(folder) / DATA_FILE
    if path.is_file():
        fix = "delete it only if the folder's results are to be made again from the data now given"
        recorded = TaskData.from_record(read_json(path, fix))
        if recorded.identity() != task.identity() or recorded.source != task.source:
            raise DataMismatchError(
                f"{folder} was made from {recorded.describe()}"
                + (f" (fingerprint {recorded.fingerprint[:12]})" if recorded.fingerprint else "")
                + f"; now asked for {task.describe()}"
                + (f" (fingerprint {task.fingerprint[:12]})" if task.fingerprint else "")
                + ". Use a new --out folder for other data"
            )
        if recorded.source == "folders" and recorded.roots != task.roots:
            say(f"data: the same files as before (fingerprint {task.fingerprint[:12]}), now read from their new place")
            return task  # the recorded split, at the new paths: the new scan made the same one from the same files
        return recorded
    if task.source == "folders":
        task = dataclasses.replace(task, gray_files=_check_images(task, request.min_side, say))
    writable_folder(folder)
    write_json(path, task.record())
    return task


def _describe_request(request: DataRequest) -> TaskData:
    if request.data is None:
        degradation, sigma = request.degradation or "gaussian_noise", 25.0 if request.sigma is None else request.sigma
        return TaskData("bundled" if request.bundled else "catalogue", degradation, float(sigma))
    splits: dict[str, list[Pair]] = {}
    split_from: dict[str, str] = {}
    roots: dict[str, str] = {}
    data = request.data.resolve()
    own = _own_split(data, request.dual_pixel)
    if own:
        for split, (root, pairs) in own.items():
            splits[split], roots[split], split_from[split] = pairs, str(root), f"the dataset's own {split} split"
    else:
        splits["train"], roots["train"] = _find(data, request.dual_pixel), str(data if data.is_dir() else data.parent)
        split_from["train"] = str(data)
    for split, given in (("val", request.val_data), ("test", request.test_data)):
        if given is not None:
            given = given.resolve()
            splits[split], roots[split] = (
                _find(given, request.dual_pixel),
                str(given if given.is_dir() else given.parent),
            )
            split_from[split] = f"--{split}-data {given}"
    missing = [s for s in ("val", "test") if s not in splits]
    if missing:
        pool, source_root = splits["train"], roots["train"]
        parts = seeded_split(pool, source_root, missing, request.split_seed)
        splits["train"] = parts["train"]
        how = "by scene folder" if _groups(pool) >= MIN_GROUPS else "by pair"
        for split in missing:
            splits[split], roots[split] = parts[split], source_root
            share = VAL_FRACTION if split == "val" else TEST_FRACTION
            split_from[split] = f"{share:.0%} of {split_from['train']}, seed {request.split_seed}, {how}"
        split_from["train"] = f"the rest of {split_from['train']}"
    task = TaskData(
        "folders",
        splits={s: tuple(splits[s]) for s in SPLITS},
        split_from=split_from,
        roots=roots,
        dual_pixel=request.dual_pixel,
    )
    return dataclasses.replace(task, fingerprint=_fingerprint(task))


def _find(root: Path, dual_pixel: bool) -> list[Pair]:
    """find_pairs, or, for a folder that holds a single dataset folder (Restormer's `train/GoPro/`), that one's."""
    try:
        return find_pairs(root, dual_pixel=dual_pixel)
    except DatasetError:
        inner = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        if len(inner) != 1:
            raise
        return find_pairs(inner[0], dual_pixel=dual_pixel)


def _own_split(root: Path, dual_pixel: bool) -> dict[str, tuple[Path, list[Pair]]]:
    """The dataset's own split: `train/` and `test/` (and `val/`) subfolders, DPDD's `train_c`/`test_c` (and `val_c`),
    or RealBlur's train and test lists."""
    if not root.is_dir():
        return {}
    if (root / "train_c").is_dir() and (root / "test_c").is_dir():
        by_split: dict[str, list[Pair]] = {}
        for lq, gt in find_pairs(root, dual_pixel=dual_pixel):  # each target lies in <split>_c/target
            by_split.setdefault(gt.relative_to(root).parts[0][: -len("_c")], []).append((lq, gt))
        return {s: (root, pairs) for s, pairs in by_split.items() if s in SPLITS}
    lists = {s: sorted(root.glob(f"*_{s}_list.txt")) for s in ("train", "test")}
    if all(len(found) == 1 for found in lists.values()):
        return {s: (root, find_pairs(found[0])) for s, found in lists.items()}
    folders = {}
    for split, names in SPLIT_FOLDERS.items():
        found = next((root / n for n in names if (root / n).is_dir()), None)
        if found is not None:
            folders[split] = found
    if "train" not in folders or "test" not in folders:
        return {}
    try:
        return {split: (folder, _find(folder, dual_pixel)) for split, folder in folders.items()}
    except DatasetError:  # targets beside the split folders, not in them (HIDE's GT/): pair at the root, then split
        by_split: dict[str, list[Pair]] = {}
        names = {folder.name: split for split, folder in folders.items()}
        for lq, gt in find_pairs(root, dual_pixel=dual_pixel):
            split = names.get(_first(lq).relative_to(root).parts[0])
            if split is None:
                raise
            by_split.setdefault(split, []).append((lq, gt))
        return {split: (root, pairs) for split, pairs in by_split.items()}


def _groups(pairs: list[Pair]) -> int:
    return len({_first(lq).parent for lq, _ in pairs})


def seeded_split(pairs: list[Pair], root: str, splits: list[str], seed: int) -> dict[str, list[Pair]]:
    """Split `pairs` into train and the `splits` asked for (val, test), 10% each, with `seed`: by scene folder
    when the pairs come from at least MIN_GROUPS folders (GoPro, SIDD: one scene's frames on one side), else by
    pair. Each side keeps the pairs' order."""
    by_scene = _groups(pairs) >= MIN_GROUPS
    by_group: dict[Path, list[int]] = {}
    for index, (lq, _) in enumerate(pairs):
        by_group.setdefault(_first(lq).parent if by_scene else Path(str(index)), []).append(index)
    units = list(by_group.values())
    order = np.random.default_rng(seed).permutation(len(units))
    wanted = {s: max(1, round(len(units) * (VAL_FRACTION if s == "val" else TEST_FRACTION))) for s in splits}
    if len(units) - sum(wanted.values()) < 1:
        raise DatasetError(
            f"{root}: {len(pairs)} pair(s) cannot be split into train, {' and '.join(splits)} (one pair each at "
            "least); add pairs, or give --val-data and --test-data folders"
        )
    chosen: dict[str, list[Pair]] = {}
    start = 0
    for split in splits:
        picked = sorted(i for unit in order[start : start + wanted[split]] for i in units[unit])
        chosen[split] = [pairs[i] for i in picked]
        start += wanted[split]
    rest = sorted(i for unit in order[start:] for i in units[unit])
    chosen["train"] = [pairs[i] for i in rest]
    return chosen


def _fingerprint(task: TaskData) -> str:
    """sha256 of every split's pairs by relative name and byte size: the same files, wherever the folder is."""
    entries = []
    for split in SPLITS:
        root = task.roots[split]
        for lq, gt in task.splits[split]:
            files = [*(lq if isinstance(lq, tuple) else (lq,)), gt]
            entries.append([split, *[[str(Path(f).relative_to(root)), Path(f).stat().st_size] for f in files]])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _check_images(task: TaskData, min_side: int, say: Say) -> int:
    """Decode every image once: unreadable or truncated files, pairs of different sizes, images smaller than the
    crops the steps draw, and the bit depths and channels there are. The first problem is raised, naming the file;
    grayscale files are read as RGB, said once; returns how many there are."""
    from rich import get_console
    from rich.progress import Progress

    from edgeens.data.images import ImageError, open_image

    total = sum(len(task.splits[s]) for s in SPLITS)
    gray: list[Path] = []
    with Progress(transient=True, disable=not get_console().is_terminal) as progress:  # no empty line in a log
        bar = progress.add_task("checking the dataset's images", total=total)
        for split in SPLITS:
            need = min_side if split == "train" else MIN_EVAL_SIDE
            for lq, gt in task.splits[split]:
                sizes = {}
                for path in [*(lq if isinstance(lq, tuple) else (lq,)), gt]:
                    with open_image(path, "replace the file or remove the pair from the folder") as image:
                        sizes[path] = image.size
                        if image.mode in ("L", "I;16", "I;16B", "I;16L", "I"):
                            gray.append(path)
                        elif image.mode not in ("RGB",):
                            raise ImageError(
                                f"{path}: image mode {image.mode} (alpha, palette or CMYK); edgeens reads RGB or "
                                "grayscale. Convert it first, e.g. PIL: Image.open(p).convert('RGB').save(p)"
                            )
                if len(set(sizes.values())) > 1:
                    listed = ", ".join(f"{p} is {w}x{h}" for p, (w, h) in sizes.items())
                    raise ImageError(f"{listed}: the images of a pair must have the same size")
                w, h = sizes[gt]
                if min(w, h) < need:
                    what = "training crops" if split == "train" else "evaluation"
                    raise ImageError(
                        f"{gt} is {w}x{h}, smaller than the {need}x{need} {what} need ({split} split); remove the "
                        "pair, or ask for smaller patches"
                    )
                progress.advance(bar)
    if gray:
        say(f"data: {len(gray)} grayscale image(s) (e.g. {gray[0]}) are read as RGB, their channel repeated")
    return len(gray)
