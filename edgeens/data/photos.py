"""The photo catalogue: natural photographs that ship offline in packages, split once into train / val / test.

scikit-image's wheel holds six usable colour photographs and matplotlib's one; two Debian packages (MATE's and
Plasma's wallpapers, GPL-2+) hold 22 more. `install_photos` fetches the two `.deb` files with `apt-get download`
(the registry this machine reaches), checks every source file's SHA-256, downsizes each photo with an area filter
(which also averages away most of the wallpapers' JPEG blocking) and writes PNGs under `photo_root()`.
Nothing is committed, nothing is fetched at run time: `make photos` (or `python -m edgeens.data.photos`) installs.

The split is fixed here, by name. The test photos are never cropped for training nor used for validation or
tuning; quote figures on them (`edgeens bench --split test`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeens.errors import EdgeensError
from edgeens.files import atomic_path

if TYPE_CHECKING:
    from edgeens.data.synthetic import MotionBlur

SPLITS = ("train", "val", "test")
TRAIN_SIDE = 1024  # longest side of a training photo after the area filter
EVAL_SIDE = 768  # validation and test photos: Kodak-like sizes, quick to restore whole


@dataclass(frozen=True)
class CataloguePhoto:
    name: str
    source: str  # "skimage", "matplotlib" or a Debian package name
    member: str  # path inside the package ('' for skimage, which loads by function name)
    split: str
    licence: str
    sha256: str = ""  # first 16 hex digits of the source file's SHA-256 (Debian files only)


_MATE = "usr/share/backgrounds/mate/nature/{}.jpg"
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_MATE_PKG, _PLASMA_PKG = "mate-backgrounds", "plasma-workspace-wallpapers"

CATALOGUE: tuple[CataloguePhoto, ...] = (
    # scikit-image's wheel (public domain / CC0); the Hubble field and the retina scan are not natural photographs
    *(CataloguePhoto(n, "skimage", "", "train", "CC0 / public domain") for n in ("astronaut", "coffee", "rocket")),
    CataloguePhoto("motorcycle_left", "skimage", "", "train", "CC0 / public domain"),
    CataloguePhoto("motorcycle_right", "skimage", "", "train", "CC0 / public domain"),
    CataloguePhoto("chelsea", "skimage", "", "val", "CC0 / public domain"),
    CataloguePhoto(
        "grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "test", "public domain (US Navy)"
    ),
    # MATE's nature wallpapers (Debian mate-backgrounds 1.26.0-1, GPL-2+)
    *(
        CataloguePhoto(f"mate-{name}", _MATE_PKG, _MATE.format(name), split, "GPL-2+", digest)
        for name, split, digest in (
            ("Aqua", "train", "5c30118205982da4"),
            ("Blinds", "train", "f7aac0dcc2e06d04"),
            ("Dune", "test", "8a67c2cb0be8c46b"),
            ("FreshFlower", "train", "972b0a0c4e5e3fa9"),
            ("Garden", "train", "d3095ee09d425ef2"),
            ("GreenMeadow", "train", "8fa0de0aa4089f73"),
            ("LadyBird", "test", "e35a9a4126ef969c"),
            ("RainDrops", "val", "3e4ea9671c28c90a"),
            ("Storm", "train", "77ca53077831d323"),
            ("TwoWings", "train", "665e5abf8a539907"),
            ("Wood", "train", "19c78500ac00a622"),
            ("YellowFlower", "train", "254da96256acb7ad"),
        )
    ),
    # Plasma's photographic wallpapers (Debian plasma-workspace-wallpapers 5.27.5-2, GPL-2+); renders are left out
    *(
        CataloguePhoto(f"plasma-{name}", _PLASMA_PKG, _PLASMA.format(name), split, "GPL-2+", digest)
        for name, split, digest in (
            ("BytheWater", "train", "c272434ef39f2abf"),
            ("ColdRipple", "train", "05bef6722fc0ed81"),
            ("ColorfulCups", "test", "6e0f3a72feb5a4a9"),
            ("DarkestHour", "train", "8e3703fae3a3c217"),
            ("EveningGlow", "test", "586682dcb362b9f6"),
            ("FallenLeaf", "val", "95603a6560c7e8d5"),
            ("Grey", "train", "88c31d8944b7e693"),
            ("OneStandsOut", "val", "cb507baf1dafdcae"),
            ("Path", "test", "7477457d7f17b736"),
            ("summer_1am", "train", "c868b50789591dd4"),
        )
    ),
)
DEBIAN_PACKAGES = (_MATE_PKG, _PLASMA_PKG)


class PhotosError(EdgeensError):
    """The photo catalogue is not installed or cannot be installed, with the fix."""


def photo_root() -> Path:
    """Where installed photos live: `$EDGEENS_PHOTOS`, else `~/.cache/edgeens/photos`."""
    return Path(os.environ.get("EDGEENS_PHOTOS") or Path.home() / ".cache" / "edgeens" / "photos")


def _downsize(image: np.ndarray, side: int) -> np.ndarray:
    """Area-filter `image` (uint8 HWC) so its longest side is at most `side`."""
    from PIL import Image

    pil = Image.fromarray(image)
    scale = side / max(pil.size)
    if scale < 1:
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.BOX)
    return np.asarray(pil)


def _load_source(photo: CataloguePhoto, extracted: Path | None) -> np.ndarray:
    from PIL import Image

    if photo.source == "skimage":
        from edgeens.data.bundled import bundled_photo

        return (bundled_photo(photo.name) * 255.0 + 0.5).astype(np.uint8)
    if photo.source == "matplotlib":
        import matplotlib

        path = Path(matplotlib.__file__).parent / photo.member
    else:
        assert extracted is not None
        path = extracted / photo.source / photo.member
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if digest != photo.sha256:
            raise PhotosError(
                f"{photo.source}: {photo.member} has SHA-256 {digest}..., expected {photo.sha256}...: the package "
                "version differs from the catalogue's; the split would not be the one the figures were measured on"
            )
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _fetch_debs(workdir: Path) -> Path:
    """`apt-get download` the catalogue's packages into `workdir` and unpack each into its own folder."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PhotosError("installing the photos needs apt-get and dpkg-deb (Debian or Ubuntu)")

    def download() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["apt-get", "download", *DEBIAN_PACKAGES], cwd=workdir, capture_output=True, text=True, check=False
        )

    result = download()
    if result.returncode != 0 and os.geteuid() == 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        result = download()
    if result.returncode != 0:
        raise PhotosError(
            f"apt-get download {' '.join(DEBIAN_PACKAGES)} failed: {result.stderr.strip().splitlines()[-1:]}; "
            "run 'sudo apt-get update' and try again"
        )
    extracted = workdir / "x"
    for deb in workdir.glob("*.deb"):
        target = extracted / deb.name.split("_")[0]
        target.mkdir(parents=True, exist_ok=True)
        unpacked = subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], capture_output=True, text=True)
        if unpacked.returncode != 0:
            raise PhotosError(f"dpkg-deb could not unpack {deb.name}: {unpacked.stderr.strip()}")
    return extracted


def install_photos(root: Path | None = None, say=print) -> Path:
    """Fetch, check, downsize and write every catalogue photo as `root/<split>/<name>.png`, plus `manifest.json`.
    Photos already written are kept; the manifest is written last, so its presence means a complete install."""
    from PIL import Image

    root = Path(root or photo_root())
    todo = [p for p in CATALOGUE if not (root / p.split / f"{p.name}.png").is_file()]
    if todo:
        with tempfile.TemporaryDirectory(prefix="edgeens-photos-") as tmp:
            extracted = _fetch_debs(Path(tmp)) if any(p.source in DEBIAN_PACKAGES for p in todo) else None
            for photo in todo:
                image = _downsize(_load_source(photo, extracted), TRAIN_SIDE if photo.split == "train" else EVAL_SIDE)
                out = root / photo.split / f"{photo.name}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(out) as tmp_png:
                    Image.fromarray(image).save(tmp_png, format="PNG")
                size = f"{image.shape[1]}x{image.shape[0]}"
                say(f"{photo.split:5s} {photo.name} {size} ({photo.source}, {photo.licence})")
    manifest = {
        "photos": [
            {"name": p.name, "split": p.split, "source": p.source, "member": p.member, "licence": p.licence}
            for p in CATALOGUE
        ],
        "train_side": TRAIN_SIDE,
        "eval_side": EVAL_SIDE,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def photo_split(split: str, root: Path | None = None) -> dict[str, np.ndarray]:
    """The installed photographs of one split by name, as float32 (H, W, 3) in [0, 1]."""
    from edgeens.data.images import read_image

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = Path(root or photo_root())
    if not (root / "manifest.json").is_file():
        raise PhotosError(
            f"the photo catalogue is not installed in {root}: run 'make photos' "
            "(or python -m edgeens.data.photos) first"
        )
    return {p.name: read_image(root / p.split / f"{p.name}.png") for p in CATALOGUE if p.split == split}


def photo_generator(seed: int, index: int) -> np.random.Generator:
    """The generator photo `index` of a split (in catalogue order) is degraded with: one per photo, so every run
    and rank sees the same pairs and a baseline can redraw what a photo was degraded with."""
    return np.random.default_rng([seed, index])


def degraded_pairs(
    split: str, degradation: str, sigma: float, seed: int = 0, root: Path | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) whole photos of one split by name; photo i is degraded with a generator of its own
    ([seed, i]), so every run (and every rank) sees the same pairs."""
    from edgeens.data.synthetic import degrade

    images = photo_split(split, root)
    return {
        name: (degrade(clean, degradation, photo_generator(seed, i), sigma), clean)
        for i, (name, clean) in enumerate(images.items())
    }


def true_shakes(split: str, seed: int = 0) -> dict[str, MotionBlur]:
    """The camera shake each photo of `split` is blurred with in `degraded_pairs(split, "motion_blur", ...)`,
    redrawn from the same generators: what a non-blind deblurring baseline is told."""
    from edgeens.data.synthetic import MotionBlur

    names = [p.name for p in CATALOGUE if p.split == split]
    return {name: MotionBlur.draw(photo_generator(seed, i)) for i, name in enumerate(names)}


def training_photos(root: Path | None = None) -> list[np.ndarray]:
    """The clean training photographs: what teacher, distillation and fine-tuning crop from by default."""
    return list(photo_split("train", root).values())


def validation_crops(
    degradation: str, sigma: float, size: int = 128, per_photo: int = 2, seed: int = 0, root: Path | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (degraded, clean) crops of the validation photos, `per_photo` of each along its diagonal: the search's
    objective and the fine-tuning's model selection (restoring whole photos for every evaluated architecture would
    cost the search ~45x more). Crop k is degraded with a generator of its own ([seed, k])."""
    from edgeens.data.synthetic import degrade

    pairs = []
    for image in photo_split("val", root).values():
        h, w = image.shape[:2]
        for j in range(1, per_photo + 1):
            top, left = (h - size) * j // (per_photo + 1), (w - size) * j // (per_photo + 1)
            clean = np.ascontiguousarray(image[top : top + size, left : left + size])
            pairs.append((degrade(clean, degradation, np.random.default_rng([seed, len(pairs)]), sigma), clean))
    return pairs


if __name__ == "__main__":
    try:
        where = install_photos(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    except PhotosError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"photos installed in {where}")
