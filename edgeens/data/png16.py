"""16-bit PNG decoding (DPDD's images), which Pillow reads as 8-bit RGB without a word.

zlib does the decompression; the scanline filters are undone with numpy. A filtered byte depends on its left,
upper and upper-left neighbours, so every pixel on one anti-diagonal (y + x = k) can be computed at once from the
two diagonals before it: H + W vectorised steps instead of H x W Python ones (about a second for DPDD's 1680x1120).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from edgeens.errors import EdgeensError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


class PngError(EdgeensError):
    pass


def read_png16(path: str | Path) -> np.ndarray:
    """A 16-bit, non-interlaced PNG as uint16 (H, W, C)."""
    data = Path(path).read_bytes()
    if not data.startswith(SIGNATURE):
        raise PngError(f"{path}: not a PNG file")
    position, header, compressed = 8, None, []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) < length:
            raise PngError(f"{path}: truncated in its {kind.decode(errors='replace')} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    if header is None or not compressed:
        raise PngError(f"{path}: no image header or data (truncated?)")
    width, height, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in CHANNELS:
        raise PngError(f"{path}: bit depth {depth}, colour type {colour}; this reader is for 16-bit images")
    if interlace:
        raise PngError(f"{path}: interlaced 16-bit PNG; save it without interlacing")
    channels = CHANNELS[colour]
    bpp = 2 * channels
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(compressed)), dtype=np.uint8)
    except zlib.error as err:
        raise PngError(f"{path}: corrupt image data ({err})") from None
    stride = width * bpp + 1
    if raw.size != height * stride:
        raise PngError(f"{path}: {raw.size} bytes of pixel data, expected {height * stride} (truncated?)")
    rows = raw.reshape(height, stride)
    filters = rows[:, 0].astype(np.int16)
    if filters.max(initial=0) > 4:
        raise PngError(f"{path}: unknown scanline filter {int(filters.max())} (corrupt file)")
    pixels = _unfilter(rows[:, 1:].reshape(height, width, bpp).astype(np.int16), filters)
    return pixels.astype(np.uint8).reshape(height, width, channels, 2).view(">u2")[..., 0].astype(np.uint16)


def _unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    height, width, _ = filtered.shape
    if not filters.any():
        return filtered
    out = np.zeros((height + 1, width + 1, filtered.shape[2]), dtype=np.int16)  # a zero row above, a zero column left
    for k in range(height + width - 1):
        y = np.arange(max(0, k - width + 1), min(height, k + 1))
        x = k - y
        a, b, c = out[y + 1, x], out[y, x + 1], out[y, x]  # left, up, up-left (padded coordinates)
        kind = filters[y][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        predictor = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) // 2, paeth], 0)
        out[y + 1, x + 1] = (filtered[y, x] + predictor) & 0xFF
    return out[1:, 1:]


def write_png16(path: str | Path, image: np.ndarray) -> None:
    """Write uint16 (H, W), (H, W, 2) gray + alpha, (H, W, 3) or (H, W, 4) RGBA as a 16-bit PNG (scanlines
    unfiltered; zlib does the compression)."""
    image = np.asarray(image, dtype=np.uint16)
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    colour = {value: key for key, value in CHANNELS.items()}[channels]
    rows = image.astype(">u2").reshape(height, -1).view(np.uint8)
    scanlines = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    Path(path).write_bytes(
        SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)) + chunk(b"IEND", b"")
    )
