"""Write the fixture that the Java core's test (PythonFixtureTest) must reproduce exactly.

Each case restores a test image with `edgeens.restore.restore_array` (the tiling, padding and blending that
`edgeens restore` uses) and one of two toy models that Java computes in the same float32 order: `square`
(0.5 x^2 + 0.25 per pixel) and `box` (a 3x3 mean, zeros outside the tile). Usage: python write_fixture.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgeens.data.bundled import bundled_photo
from edgeens.restore import Restorer, restore_array

# (image size h x w, model, tile h x w, overlap): several tiles, an image smaller than the tile (reflection
# padding), one too small to reflect (replication), and small tiles.
CASES = [
    ((70, 101), "square", (32, 40), 8),
    ((70, 101), "box", (32, 40), 8),
    ((20, 24), "box", (32, 40), 8),
    ((9, 10), "square", (32, 40), 8),
    ((70, 101), "box", (16, 16), 4),
]


def square(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * (x * x) + np.float32(0.25)


def box(x: np.ndarray) -> np.ndarray:
    _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    total = np.zeros_like(x)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            total = total + padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return total / np.float32(9)


def write_fixture(out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    photo = bundled_photo("astronaut")
    lines = []
    for index, ((h, w), name, (tile_h, tile_w), overlap) in enumerate(CASES):
        image = np.ascontiguousarray(photo[100 : 100 + h, 150 : 150 + w])
        pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(pixels).save(out / f"input{index}.png")
        model = {"square": square, "box": box}[name]

        def run(x: torch.Tensor, model=model) -> torch.Tensor:
            return torch.from_numpy(model(x[0].numpy().astype(np.float32)))[None]

        rgb = pixels.astype(np.float32) / 255.0  # as the Java side reads the 8-bit PNG
        restored = restore_array(Restorer(name, run, (tile_h, tile_w)), rgb, overlap=overlap)
        stem = f"expected{index}"
        np.ascontiguousarray(restored.transpose(2, 0, 1), dtype="<f4").tofile(out / f"{stem}.f32")
        Image.fromarray((np.clip(restored, 0, 1) * 255 + 0.5).astype(np.uint8)).save(out / f"{stem}.png")
        lines.append(f"input{index}.png {name} {tile_h} {tile_w} {overlap} {stem}")
    (out / "cases.txt").write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python write_fixture.py OUT_DIR")
    for line in write_fixture(Path(sys.argv[1])):
        print(line)
