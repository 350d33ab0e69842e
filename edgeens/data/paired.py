"""Paired (degraded, clean) images in the folder layouts restoration datasets ship in.

- Restormer's convention, `<root>/{input,target}/` (also `input_crops/target_crops` and DPDD's `inputC`): pairs
  match by file stem, or by what is left of it once each side's fixed prefix and suffix are taken off
  (`rain-12` with `norain-12`, `0012_blur` with `0012_gt`); names that match neither way are refused, listed,
  never paired by sort order.
- Original layouts, recognised by marker paths: GoPro (`<scene>/blur` + `<scene>/sharp`), HIDE (`GT/` beside the
  blurred images), RealBlur (`*_list.txt` of "gt blur" lines), Rain100L/H (`rainy/rain-N.png` with
  `norain-N.png` beside), SIDD Medium (`*_NOISY_*` with `*_GT_*` in each scene folder), DPDD
  (`<split>_c/{source,target}`, paired by order). SIDD's validation `.mat` blocks load with
  `sidd_validation_blocks`.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeens.data.images import IMAGE_SUFFIXES, ImageError, read_image
from edgeens.data.transforms import dihedral, paired_random_crop
from edgeens.errors import EdgeensError

INPUT_DIRS = ("input", "input_crops", "inputC")
TARGET_DIRS = ("target", "target_crops")


class DatasetError(EdgeensError):
    """A dataset folder that cannot be used, with the folder or file named."""


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


Input = Path | tuple[Path, Path]  # one file, or DPDD's left and right dual-pixel views (6 channels together)


def find_pairs(root: str | Path, dual_pixel: bool = False) -> list[tuple[Input, Path]]:
    """(input, target) file pairs under `root`, in whichever supported layout it is. `dual_pixel`: DPDD's left and
    right views as the input (Restormer's defocus_dual_pixel task) instead of the centre view."""
    root = Path(root)
    if dual_pixel:
        return _dpdd_dual_pairs(root)
    if root.is_file() and root.name.endswith("_list.txt"):
        return _realblur_pairs(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    for detect, pair in _LAYOUTS:
        if detect(root):
            pairs = pair(root)
            if not pairs:
                raise DatasetError(f"{root}: the layout was recognised but it holds no image pairs")
            return pairs
    return _restormer_pairs(root)


def _restormer_pairs(root: Path) -> list[tuple[Path, Path]]:
    inputs = next((root / d for d in INPUT_DIRS if (root / d).is_dir()), None)
    targets = next((root / d for d in TARGET_DIRS if (root / d).is_dir()), None)
    if inputs is None or targets is None:
        raise DatasetError(
            f"{root} needs an input folder ({' or '.join(INPUT_DIRS)}) and a target folder "
            f"({' or '.join(TARGET_DIRS)}), as Restormer's datasets are laid out, or one of the original layouts "
            f"(GoPro, HIDE, RealBlur, Rain100, SIDD, DPDD); found: "
            f"{', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'}"
        )
    return _match(_images(inputs), _images(targets), targets)


def _core(stems: list[str]) -> list[str]:
    """Each stem without the prefix and suffix all of them share (never cutting into a number), numbers as integers:
    the part that names the picture, whatever each side calls its role ("rain-", "norain-", "_blur", "_gt")."""
    if len(stems) < 2:
        return ["" for _ in stems]
    prefix = os.path.commonprefix(stems)
    suffix = os.path.commonprefix([s[::-1] for s in stems])[::-1]
    while prefix and prefix[-1].isdigit():  # "rain-1" of rain-1, rain-12: the number is the picture's, keep it
        prefix = prefix[:-1]
    while suffix and suffix[0].isdigit():
        suffix = suffix[1:]
    cores = [s[len(prefix) : len(s) - len(suffix)] for s in stems]
    return [re.sub(r"\d+", lambda m: str(int(m.group())), c) for c in cores]


def _match(lq: list[Path], gt: list[Path], where: Path) -> list[tuple[Path, Path]]:
    """Inputs with their targets by stem, else by the stems' cores (`_core`); anything else is refused with the
    first unmatched names: pairing by sort order would silently score against the wrong targets."""
    if not lq:
        raise DatasetError(
            f"{where.parent if where.is_dir() else where} holds no input images ({', '.join(IMAGE_SUFFIXES)})"
        )
    by_stem = {p.stem: p for p in gt}
    if all(p.stem in by_stem for p in lq):
        return [(p, by_stem[p.stem]) for p in lq]
    lq_cores, gt_cores = _core([p.stem for p in lq]), _core([p.stem for p in gt])
    by_core = dict(zip(gt_cores, gt, strict=True))
    if len(set(lq_cores)) == len(lq) and len(by_core) == len(gt) and all(c in by_core for c in lq_cores):
        return [(p, by_core[c]) for p, c in zip(lq, lq_cores, strict=True)]
    missing = [p.name for p in lq if p.stem not in by_stem]
    unused = sorted({p.name for p in gt} - {p.name for p in lq})
    raise DatasetError(
        f"{where.parent}: {len(missing)} input(s) have no target of the same name (e.g. {', '.join(missing[:3])}; "
        f"targets without an input: {', '.join(unused[:3]) or 'none'}); name each target as its input (or with a "
        "fixed prefix/suffix, as rain-N / norain-N), edgeens does not pair files by sort order"
    )


def _gopro_pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for blur in sorted(root.glob("**/blur"), key=_natural_key):
        pairs += _match(_images(blur), _images(blur.parent / "sharp"), blur.parent / "sharp")
    return pairs


def _hide_pairs(root: Path) -> list[tuple[Path, Path]]:
    gt = {p.name: p for p in _images(root / "GT")}
    blurred = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "GT" not in p.parts), key=_natural_key
    )
    missing = [p.name for p in blurred if p.name not in gt]
    if missing:
        raise DatasetError(f"{root / 'GT'}: no ground truth named like {', '.join(missing[:3])}")
    return [(p, gt[p.name]) for p in blurred]


def _realblur_pairs(list_file: Path) -> list[tuple[Path, Path]]:
    base = list_file.parent
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DatasetError(f"{list_file}:{number}: expected 'gt_path blur_path', got {line!r}")
        gt, blur = base / parts[0], base / parts[1]
        for path in (gt, blur):
            if not path.is_file():
                raise DatasetError(f"{list_file}:{number}: {path} does not exist")
        pairs.append((blur, gt))
    return pairs


def _realblur_list(root: Path) -> list[tuple[Path, Path]]:
    lists = sorted(root.glob("*_list.txt"))
    if len(lists) > 1:
        raise DatasetError(
            f"{root} holds several pair lists ({', '.join(p.name for p in lists)}); "
            "pass the list file itself as the dataset path"
        )
    return _realblur_pairs(lists[0])


def _rain100_pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for rainy in _images(root / "rainy"):
        gt = root / f"no{rainy.name}"
        if not gt.is_file():
            raise DatasetError(f"{rainy}: its ground truth {gt} does not exist")
        pairs.append((rainy, gt))
    return pairs


def _sidd_pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for noisy in sorted(root.rglob("*_NOISY_*"), key=_natural_key):
        gt = noisy.with_name(noisy.name.replace("_NOISY_", "_GT_"))
        if not gt.is_file():
            raise DatasetError(f"{noisy}: its ground truth {gt.name} is missing")
        pairs.append((noisy, gt))
    return pairs


def _dpdd_pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for centre in sorted(root.glob("*_c"), key=_natural_key):
        # targets are numbered by their own capture, so DPDD pairs by order, never by name
        lq, gt = _images(centre / "source"), _images(centre / "target")
        if len(lq) != len(gt):
            raise DatasetError(f"{centre}: {len(lq)} sources but {len(gt)} targets")
        pairs += list(zip(lq, gt, strict=True))
    return pairs


def _dpdd_dual_pairs(root: Path) -> list[tuple[Input, Path]]:
    """((left, right), target) from DPDD's `*_l/source` + `*_r/source` + `*_c/target`, or Restormer's prepared
    `inputL/` + `inputR/` + `target/`; views and targets are paired by order, as DPDD names them by capture."""
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if (root / "inputL").is_dir():
        groups = [(root / "inputL", root / "inputR", root / "target")]
    else:
        groups = [
            (c.with_name(c.name[:-2] + "_l") / "source", c.with_name(c.name[:-2] + "_r") / "source", c / "target")
            for c in sorted(root.glob("*_c"), key=_natural_key)
        ]
    if not groups:
        raise DatasetError(
            f"{root} is not a DPDD dual-pixel folder: it needs inputL/, inputR/ and target/ (Restormer's layout) or "
            "*_l/source, *_r/source and *_c/target (DPDD's own)"
        )
    pairs: list[tuple[Input, Path]] = []
    for left, right, target in groups:
        for folder in (left, right, target):
            if not folder.is_dir():
                raise DatasetError(f"{folder} is missing: dual-pixel input needs both views and the target")
        lefts, rights, targets = _images(left), _images(right), _images(target)
        if not len(lefts) == len(rights) == len(targets):
            raise DatasetError(
                f"{left.parent}: {len(lefts)} left views, {len(rights)} right views and {len(targets)} targets; "
                "every target needs both views"
            )
        pairs += [((lv, rv), t) for lv, rv, t in zip(lefts, rights, targets, strict=True)]
    if not pairs:
        raise DatasetError(f"{root}: the DPDD layout was recognised but it holds no image pairs")
    return pairs


_LAYOUTS = (
    (lambda r: any(r.glob("*_list.txt")), _realblur_list),
    (lambda r: (r / "GT").is_dir(), _hide_pairs),
    (lambda r: (r / "rainy").is_dir(), _rain100_pairs),
    (lambda r: any(r.glob("*_c/source")), _dpdd_pairs),
    (lambda r: any(b.is_dir() and (b.parent / "sharp").is_dir() for b in r.glob("**/blur")), _gopro_pairs),
    (lambda r: any(r.rglob("*_NOISY_*")), _sidd_pairs),
)


def sidd_validation_blocks(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """SIDD's validation blocks: (noisy, clean) float32 arrays (1280, 256, 256, 3) in [0, 1] from
    `ValidationNoisyBlocksSrgb.mat` and `ValidationGtBlocksSrgb.mat` (MATLAB v5 via scipy, or v7.3 via h5py)."""
    folder = Path(folder)
    arrays = []
    for name in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
        path = folder / f"{name}.mat"
        if not path.is_file():
            raise DatasetError(f"{path} does not exist (SIDD validation needs {name}.mat in {folder})")
        try:
            from scipy.io import loadmat

            blocks = loadmat(str(path))[name]
        except NotImplementedError:  # MATLAB v7.3 files are HDF5
            try:
                import h5py
            except ImportError:
                raise DatasetError(f"{path} is a MATLAB v7.3 file; install h5py to read it") from None
            with h5py.File(path, "r") as f:
                blocks = np.asarray(f[name]).transpose(tuple(range(f[name].ndim))[::-1])
        except KeyError:
            raise DatasetError(f"{path} has no variable {name!r}") from None
        if blocks.ndim != 5 or blocks.shape[-1] != 3:
            raise DatasetError(f"{path}: expected (images, blocks, H, W, 3) uint8 blocks, got shape {blocks.shape}")
        arrays.append(blocks.reshape(-1, *blocks.shape[2:]).astype(np.float32) / 255.0)
    return arrays[0], arrays[1]


@dataclass
class PairedImages:
    """Random paired crops (with the 8 dihedral augmentations) from (input, target) files, read lazily: decoded
    pairs are kept in a least-recently-used cache of at most `cache_bytes` (GoPro's 2,103 pairs are 46 GB as
    floats), which a worker process starts empty (it is not pickled with the pairs). Grayscale files among colour
    ones are read with their channel repeated."""

    pairs: list[tuple[Input, Path]]
    channels: int = 3
    cache_bytes: int = 256 * 2**20

    def __post_init__(self) -> None:
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0

    def __getstate__(self) -> dict:
        return {"pairs": self.pairs, "channels": self.channels, "cache_bytes": self.cache_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair `index` from disk as float32 (input, target) HWC arrays, checked to have the same size."""
        lq_paths, gt_path = self.pairs[index]
        gt = read_image(gt_path, self.channels, expand_gray=True)
        views = []
        for lq_path in lq_paths if isinstance(lq_paths, tuple) else (lq_paths,):
            lq = read_image(lq_path, self.channels, expand_gray=True)
            if lq.shape != gt.shape:
                raise ImageError(
                    f"{lq_path} is {lq.shape[1]}x{lq.shape[0]} but its target {gt_path} is "
                    f"{gt.shape[1]}x{gt.shape[0]}; pairs must have the same size"
                )
            views.append(lq)
        return np.concatenate(views, axis=2), gt  # dual pixel: left then right view, 6 channels

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair `index`, from the cache when it holds it."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        pair = self.read(index)
        size = pair[0].nbytes + pair[1].nbytes
        if size <= self.cache_bytes:
            self._cache[index] = pair
            self._cached += size
            while self._cached > self.cache_bytes:
                _, (lq, gt) = self._cache.popitem(last=False)
                self._cached -= lq.nbytes + gt.nbytes
        return pair

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(
        self, patch: int, batch: int, rng: np.random.Generator, augment: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch of (input, target) crops as float32 (batch, C, patch, patch) arrays."""
        lqs, gts = [], []
        for index in rng.integers(0, len(self.pairs), batch):
            lq, gt = paired_random_crop(*self.pair(int(index)), patch, rng)
            if augment:
                mode = int(rng.integers(0, 8))
                lq, gt = dihedral(lq, mode), dihedral(gt, mode)
            lqs.append(lq.transpose(2, 0, 1))
            gts.append(gt.transpose(2, 0, 1))
        return np.stack(lqs), np.stack(gts)
