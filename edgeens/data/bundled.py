"""Real photographs that ship inside scikit-image's wheel (public domain / CC0): the default data, offline."""

from __future__ import annotations

import numpy as np
from skimage import data

# Colour photographs bundled in the wheel (`eagle`, `skin` and the microscopy images download at first use: excluded).
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
)
VALIDATION = ("chelsea", "motorcycle_right")  # held out: never cropped for training
_STEREO = {"motorcycle_left": 0, "motorcycle_right": 1}  # skimage.data.stereo_motorcycle() -> (left, right, disp)


def bundled_photo(name: str) -> np.ndarray:
    """One bundled photograph as float32 (H, W, 3) in [0, 1]."""
    if name not in PHOTOS:
        raise ValueError(f"unknown bundled photo {name!r}; choose one of: {', '.join(PHOTOS)}")
    image = data.stereo_motorcycle()[_STEREO[name]] if name in _STEREO else getattr(data, name)()
    return np.ascontiguousarray(image[..., :3].astype(np.float32) / 255.0)


def bundled_split(split: str) -> dict[str, np.ndarray]:
    """The training or validation photographs by name."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    names = [n for n in PHOTOS if (n in VALIDATION) == (split == "val")]
    return {name: bundled_photo(name) for name in names}
