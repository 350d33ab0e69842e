"""Reading and writing images as float32 HWC arrays in [0, 1], with an explicit policy for channels and bit depth."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeens.errors import EdgeensError
from edgeens.files import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ImageError(EdgeensError):
    """An image file that cannot be used, with the file named and the fix."""


def _png_bit_depth(path: Path) -> int | None:
    with path.open("rb") as f:
        head = f.read(26)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25 else None


def open_image(path: Path, damaged: str) -> Image.Image:
    """Open and decode an image with Pillow; a decompression bomb or an unreadable file is an ImageError naming the
    file (`damaged` says what to do with a damaged one). Both image readers (datasets, restore) open through this."""
    try:
        with warnings.catch_warnings():  # a large genuine photo (up to twice Pillow's guard) is restored in tiles:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # no raw warning with Pillow's source line
            image = Image.open(path)
            image.load()
    except Image.DecompressionBombError as err:
        size = err.args[0].split("could be")[0].strip(" ,")
        raise ImageError(
            f"{path}: {size}: more than Pillow's decompression-bomb guard allows; if the image is genuine, split it "
            "into smaller ones first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"{path}: not a readable image ({err}); {damaged}") from None
    return image


def read_image(path: str | Path, channels: int = 3, expand_gray: bool = False) -> np.ndarray:
    """Read an image as float32 (H, W, channels) in [0, 1] (8-bit / 255, 16-bit / 65535, at full depth).

    `channels=3` accepts RGB only; `channels=1` accepts grayscale only. Grayscale, RGBA, palette and 16-bit
    colour files raise an ImageError naming the file instead of being converted behind the user's back, except
    grayscale with `expand_gray` (a dataset's reader, which says so once): its one channel is repeated."""
    path = Path(path)
    image = open_image(path, "check the file or remove it from the folder")
    mode = image.mode
    if mode in ("RGBA", "LA", "P", "PA", "CMYK"):
        raise ImageError(
            f"{path}: image mode {mode} (alpha, palette or CMYK); edgeens expects {_wanted(channels)}. "
            "Convert it first, e.g. PIL: Image.open(p).convert('RGB').save(p)"
        )
    if mode == "RGB" and _png_bit_depth(path) == 16:  # Pillow would silently truncate it to 8 bits (DPDD)
        from edgeens.data.png16 import PngError, read_png16

        try:
            array = read_png16(path).astype(np.float32) / 65535.0
        except PngError as err:
            raise ImageError(f"{err}; check the file or remove it from the folder") from None
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32) / 65535.0
    elif mode in ("L", "RGB"):
        array = np.asarray(image, dtype=np.float32) / 255.0
    else:
        raise ImageError(f"{path}: unsupported image mode {mode}; edgeens expects {_wanted(channels)}")
    array = array[..., None] if array.ndim == 2 else array
    if expand_gray and channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[2] != channels:
        raise ImageError(
            f"{path}: has {array.shape[2]} channel(s) but {_wanted(channels)} were expected; "
            "a grayscale file among colour images (or the reverse) must be converted first"
        )
    return np.ascontiguousarray(array)


def _wanted(channels: int) -> str:
    return "RGB (3 channels)" if channels == 3 else "grayscale (1 channel)"


def write_image(path: str | Path, image: np.ndarray, bits: int = 8) -> None:
    """Write a float HWC image in [0, 1] as an 8-bit (RGB or gray) or 16-bit (gray, or RGB as PNG) file,
    atomically."""
    path = Path(path)
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if bits == 16 and image.ndim == 3 and path.suffix.lower() == ".png":
        from edgeens.data.png16 import write_png16

        with atomic_path(path) as tmp:
            write_png16(tmp, (image * 65535.0 + 0.5).astype(np.uint16))
        return
    if bits == 8:
        pil = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8))
    elif bits == 16 and image.ndim == 2:
        pil = Image.fromarray((image * 65535.0 + 0.5).astype(np.uint16))
    else:
        raise ValueError(
            f"cannot write {bits}-bit images with shape {image.shape} as {path.suffix}; use 8 bits, 16 for grayscale, "
            "or 16-bit colour as .png"
        )
    with atomic_path(path) as tmp:
        pil.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
