"""Real photographs that ship inside scikit-image's wheel (public domain / CC0): the default data, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
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


def calibration_crops(folder: Path, height: int, width: int, limit: int = 8) -> list[torch.Tensor]:
    """Calibration batches for int8: (1, 3, H, W) centre crops of a folder's images (the first `limit`; `compile
    --calibration`); images smaller than the input are left out. Without a folder, calibration comes from the
    task's training split (TaskData.calibration_inputs)."""
    from edgeens.data.images import read_image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        raise ValueError(f"calibration folder {folder} holds no .png/.jpg images")
    images = [read_image(p) for p in files[:limit]]
    batches = []
    for image in images:
        h, w = image.shape[:2]
        if h < height or w < width:
            continue
        top, left = (h - height) // 2, (w - width) // 2
        crop = np.ascontiguousarray(image[top : top + height, left : left + width]).astype(np.float32)
        batches.append(torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0))
    if not batches:
        raise ValueError(f"no calibration image is at least {height}x{width}; give --calibration with larger images")
    return batches
