from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgeens.data.images import ImageError, read_image, write_image
from edgeens.data.png16 import read_png16


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_with_filters(image: np.ndarray, filters: list[int]) -> bytes:
    """An independent, byte-by-byte PNG encoder that applies the given filter to each scanline (as libpng's
    adaptive filtering does), so the decoder is tested on every filter type."""
    height, width, channels = image.shape
    bpp = 2 * channels
    rows = image.astype(">u2").reshape(height, -1).view(np.uint8).astype(int)
    body = b""
    for y, kind in enumerate(filters):
        line = []
        for i in range(width * bpp):
            a = rows[y, i - bpp] if i >= bpp else 0
            b = rows[y - 1, i] if y else 0
            c = rows[y - 1, i - bpp] if y and i >= bpp else 0
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            line.append((rows[y, i] - predictor) & 0xFF)
        body += bytes([kind, *line])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    compressed = zlib.compress(body)
    # Split the data over two IDAT chunks, as large files are.
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed[:10])
        + chunk(b"IDAT", compressed[10:])
        + chunk(b"IEND", b"")
    )


def test_every_scanline_filter_decodes_exactly(tmp_path) -> None:
    image = np.random.default_rng(0).integers(0, 65536, size=(10, 7, 3)).astype(np.uint16)
    path = tmp_path / "filtered.png"
    path.write_bytes(encode_with_filters(image, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]))
    assert np.array_equal(read_png16(path), image)
    as_float = read_image(path)  # what datasets see: full 16-bit precision, not Pillow's 8-bit truncation
    assert as_float.dtype == np.float32 and np.allclose(as_float, image / 65535.0, atol=1e-7)
    assert np.abs(as_float * 255 - np.round(as_float * 255)).max() > 0.1  # finer than any 8-bit value


def test_16_bit_colour_round_trips_through_write_image(tmp_path) -> None:
    image = np.random.default_rng(1).random((6, 9, 3)).astype(np.float32)
    write_image(tmp_path / "out.png", image, bits=16)
    assert np.abs(read_image(tmp_path / "out.png") - image).max() <= 0.5 / 65535 + 1e-7


def test_truncated_16_bit_png_is_named(tmp_path) -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint16)
    data = encode_with_filters(image, [0] * 8)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) - 30])
    with pytest.raises(ImageError, match="cut.png"):
        read_image(path)
