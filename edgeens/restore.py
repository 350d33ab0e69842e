"""Restore photos of any size with any model edgeens makes: an eager checkpoint, an ExecuTorch `.pte` or an `.onnx`.

Large images are restored in overlapping tiles whose outputs are blended with linear ramps across the overlaps, so
memory is bounded by the tile (plus the output image) and a 12-megapixel photo restores on a small machine. Exported
programs have a fixed input size, which is their tile. Images smaller than a tile, or with sides that are not
multiples of 8, are padded by reflection and cropped back.

Tiling is exact for models whose receptive-field radius is at most a quarter of the overlap (the outer quarter of
each shared edge gets no weight, the middle half is blended). Restormer's channel attention and
MambaIR's scans see the whole input, so a tiled restoration of those differs slightly from an untiled one; use
`--tile 0` (eager models) to restore in one piece when memory allows.

File formats: PNG, JPEG and TIFF in and out; 8- and 16-bit (16-bit colour PNG and TIFF keep 16 bits); grayscale
images are restored as three equal channels and written back as grayscale; an alpha channel is kept unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from edgeens.data.images import ImageError, open_image
from edgeens.files import atomic_path

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
WRITTEN_AS_PNG = (".gif",)  # a restored photo in 256 colours would undo the restoration: written as PNG


@dataclass
class Photo:
    """An image as the model sees it (float32 RGB in [0, 1]) plus what must be restored around it on writing."""

    rgb: np.ndarray  # (H, W, 3): the file's 8- or 16-bit samples, or float32 in [0, 1] once restored as floats
    alpha: np.ndarray | None  # (H, W) in [0, 1], kept as is
    gray: bool  # the file was single-channel: write it back as one channel
    bits: int  # 8 or 16
    exif: bytes | None = None  # the camera's metadata (make, date, GPS), orientation reset to 1 once applied
    icc: bytes | None = None  # the colour profile the pixels are in


def read_photo(path: str | Path) -> Photo:
    """Any PNG / JPEG / TIFF / BMP / WebP, or a GIF's first frame: gray, gray + alpha, RGB, RGBA, palette; 8- or
    16-bit."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ImageError(f"{path}: not a PNG, JPEG, TIFF, BMP, WebP or GIF file (by its name); convert it first")
    if path.suffix.lower() in (".tif", ".tiff"):
        return _from_array(path, _read_tiff(path))
    if _png_colour_16_bit(path) not in (None, 0):  # 16-bit colour or with alpha: Pillow would make it 8-bit
        from edgeens.data.png16 import PngError, read_png16

        try:
            return _from_array(path, read_png16(path))
        except PngError as err:
            raise ImageError(str(err)) from None
    image = open_image(path, "is it truncated or corrupt?")
    icc = image.info.get("icc_profile")
    exif = image.getexif()
    image = ImageOps.exif_transpose(image)  # phone photos: upright as shown, not as the sensor stored them
    if 0x0112 in exif:
        exif[0x0112] = 1  # the pixels are upright now: a viewer must not turn them again
    metadata = {"exif": exif.tobytes() if len(exif) else None, "icc": icc or None}
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "CMYK":
        image = image.convert("RGB")  # JPEGs from print workflows; the conversion is Pillow's standard one
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return dataclasses.replace(_from_array(path, np.asarray(image).astype(np.uint16)), **metadata)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageError(f"{path}: image mode {image.mode} is not supported; save it as RGB or grayscale")
    return dataclasses.replace(_from_array(path, np.asarray(image)), **metadata)


def _png_colour_16_bit(path: Path) -> int | None:
    """The PNG colour type (0 gray, 2 RGB, 4 gray + alpha, 6 RGBA) of a 16-bit PNG, else None."""
    with path.open("rb") as f:
        head = f.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[24] == 16:
        return head[25]
    return None


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as err:  # tifffile raises several types for damaged files
        raise ImageError(f"{path}: not a readable TIFF ({err}); is it truncated or corrupt?") from None
    return array


def _from_array(path: Path, array: np.ndarray) -> Photo:
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: {array.dtype} samples; edgeens reads 8- and 16-bit images")
    bits = 16 if array.dtype == np.uint16 else 8
    samples = array[..., None] if array.ndim == 2 else array
    if samples.ndim != 3 or samples.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{path}: shape {array.shape} is not an image with 1-4 channels")
    channels = samples.shape[2]
    gray = channels in (1, 2)
    # The samples as they are (no float copy of a 12-megapixel photo): restore_array converts a tile at a time.
    colour = np.repeat(samples[..., :1], 3, axis=2) if gray else samples[..., :3]
    scale = 65535.0 if bits == 16 else 255.0
    alpha = samples[..., -1].astype(np.float32) / scale if channels in (2, 4) else None
    return Photo(np.ascontiguousarray(colour), alpha, gray, bits)


def write_photo(path: str | Path, photo: Photo) -> None:
    """Write with the input's channels and bit depth (JPEG is 8-bit only), and its EXIF and colour profile where
    the format holds them (JPEG, PNG, WebP: Pillow writes them), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES or suffix in WRITTEN_AS_PNG:
        raise ImageError(f"{path}: choose an output name ending in .png, .jpg, .tif, .bmp or .webp")
    bits = 8 if suffix in (".jpg", ".jpeg", ".bmp", ".webp") else photo.bits
    wanted = np.dtype(np.uint16 if bits == 16 else np.uint8)
    if photo.rgb.dtype == wanted and not photo.gray and photo.alpha is None:
        array = photo.rgb  # already quantised as below (restore_array's out_dtype): no float copy
    else:
        rgb = photo.rgb
        if rgb.dtype != np.float32:
            rgb = rgb.astype(np.float32) / (65535.0 if rgb.dtype == np.uint16 else 255.0)
        values = rgb.mean(axis=2, keepdims=True) if photo.gray else rgb
        if photo.alpha is not None:
            values = np.concatenate([values, photo.alpha[..., None]], axis=2)
        if suffix in (".jpg", ".jpeg") and photo.alpha is not None:
            values = values[..., :-1]  # JPEG has no alpha channel
        scale = 65535.0 if bits == 16 else 255.0
        array = (np.clip(values, 0, 1) * scale + 0.5).astype(wanted)
        array = array[..., 0] if array.shape[2] == 1 else array
    try:
        with atomic_path(path, path.suffix) as tmp:
            if suffix in (".tif", ".tiff"):
                import tifffile

                tifffile.imwrite(tmp, array, photometric="minisblack" if array.ndim == 2 else "rgb")
            elif bits == 16 and array.ndim == 3:  # RGB, RGBA or gray + alpha: Pillow cannot write these at 16 bits
                from edgeens.data.png16 import write_png16

                write_png16(tmp, array)
            elif suffix == ".bmp":
                Image.fromarray(array).save(tmp, format="BMP")
            else:
                metadata = {k: v for k, v in (("exif", photo.exif), ("icc_profile", photo.icc)) if v}
                if suffix == ".png":
                    Image.fromarray(array).save(tmp, format="PNG", **metadata)
                elif suffix == ".webp":
                    Image.fromarray(array).save(tmp, format="WEBP", lossless=True, **metadata)
                else:
                    Image.fromarray(array).save(tmp, format="JPEG", quality=95, **metadata)
    except OSError as err:
        raise ImageError(
            f"cannot write {path}: {err.strerror or err}; check the folder exists and is writable"
        ) from None


# --- models ---------------------------------------------------------------------------------------------------------


@dataclass
class Restorer:
    """A model as a function of one (1, 3, h, w) tensor, with the input size it needs (None: any multiple of 8)."""

    name: str
    run: Callable[[Tensor], Tensor]
    size: tuple[int, int] | None
    tiles: bool = True  # False: always restore in one piece (classical methods, whose memory is not the model's)
    bytes_per_pixel: int = 0  # estimated peak memory of one call per input pixel (0: not estimated)


def load_restorer(path: str | Path, threads: int = 1, device: torch.device | None = None) -> Restorer:
    """An eager checkpoint (Restormer, MambaIRUNet, hybrid) on `device` (default: the CPU), an ExecuTorch program
    or an ONNX file (both run on the CPU: their runtimes here are the host's)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"model {path} does not exist")
    if path.suffix == ".pte":
        from executorch.runtime import Runtime

        from edgeens.workers import set_threads

        set_threads(threads)
        from edgeens.compile.executorch import load_forward, read_program

        program = Runtime.get().load_program(read_program(path))
        method = load_forward(program)
        shape = tuple(method.metadata.input_tensor_meta(0).sizes())
        return Restorer(path.name, lambda x, _p=program: method.execute((x.contiguous(),))[0], (shape[2], shape[3]))
    if path.suffix == ".onnx":
        from edgeens.compile.onnx import onnx_session

        session = onnx_session(path, threads)
        spec = session.get_inputs()[0]
        size = tuple(spec.shape[2:])
        fixed = all(isinstance(s, int) for s in size)

        def run(x: Tensor) -> Tensor:
            return torch.from_numpy(session.run(None, {spec.name: x.numpy()})[0])

        return Restorer(path.name, run, size if fixed else None)  # type: ignore[arg-type]
    from edgeens.models import load_model

    torch.set_num_threads(threads)
    model = load_model(path).eval()
    broken = next((name for name, value in model.state_dict().items() if not torch.isfinite(value).all()), None)
    if broken is not None:
        raise ImageError(f"{path}: weight {broken} holds NaN or infinite values; the checkpoint is broken")
    if getattr(model.config, "inp_channels", 3) != 3:
        raise ImageError(f"{path} takes {model.config.inp_channels}-channel input; restore handles RGB photos")

    return eager_restorer(model, path.name, device)


def eager_restorer(model: torch.nn.Module, name: str, device: torch.device | None = None) -> Restorer:
    """An eager model as a Restorer (any input size that is a multiple of 8; inference mode) on `device`: each
    tile goes there and its restoration comes back to the CPU, where tiles are blended."""
    device = device or torch.device("cpu")
    model.eval().to(device)

    def run_eager(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(x.to(device)).float().cpu()

    # About six live float32 maps of the widest convolution's output: 4 KiB per pixel for the tiny teacher, whose
    # measured peak at a 512x512 tile is 1.5 GiB over the process's baseline.
    widest = max((m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)), default=64)
    return Restorer(name, run_eager, None, bytes_per_pixel=6 * 4 * widest)


# --- tiling ---------------------------------------------------------------------------------------------------------


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """Weights along one side of a tile: 1 inside; at an edge shared with a neighbour, 0 over the outer quarter of the
    overlap (where the tile's own border padding reaches in), then a linear rise over its middle half."""
    weights = np.ones(length, dtype=np.float32)
    margin = overlap // 4
    span = overlap - 2 * margin
    ramp = np.concatenate(
        [np.zeros(margin), (np.arange(span) + 0.5) / max(span, 1), np.ones(overlap - margin - span)]
    ).astype(np.float32)
    if rise and overlap:
        weights[:overlap] = ramp
    if fall and overlap:
        weights[length - overlap :] = np.minimum(weights[length - overlap :], ramp[::-1])
    return weights


def _pad_to(x: Tensor, height: int, width: int) -> Tensor:
    """Reflect-pad (replicate where the image is too small to reflect) up to height x width."""
    pad_h, pad_w = height - x.shape[2], width - x.shape[3]
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[2] and pad_w < x.shape[3] else "replicate"
    return torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)


OVERLAP = 32  # pixels shared by neighbouring tiles (restore's default; the browser demo's page uses it too)


def restore_array(
    restorer: Restorer,
    rgb: np.ndarray,
    tile: int = 512,
    overlap: int = OVERLAP,
    progress: Callable[[int, int], None] | None = None,
    out_dtype: type = np.float32,
) -> np.ndarray:
    """Restore an (H, W, 3) image: float in [0, 1], or 8- / 16-bit samples (converted a tile at a time). `tile` 0
    restores in one piece (eager models only). Tiles are blended a row of tiles at a time, rows finished as soon as
    no later tile reaches them: beyond the input and the result (float32, or `out_dtype` uint8 / uint16 quantised as
    the photo writer does), memory holds one band of tiles, not a float copy of the whole image."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"restore takes (H, W, 3) RGB images, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    tile = tile if restorer.tiles else 0
    if restorer.size is not None:
        tile_h, tile_w = restorer.size
    else:  # eager: any multiple of 8, never larger than the (padded) image itself
        whole_h, whole_w = -(-height // 8) * 8, -(-width // 8) * 8
        side = max(8, tile // 8 * 8) if tile else max(whole_h, whole_w)
        tile_h, tile_w = min(side, whole_h), min(side, whole_w)
    tiled = height > tile_h or width > tile_w
    if restorer.bytes_per_pixel:
        from edgeens.limits import check_memory

        check_memory(
            restorer.bytes_per_pixel * tile_h * tile_w,
            f"restoring {tile_h}x{tile_w} pixels in one piece with {restorer.name}",
            "give a smaller --tile (e.g. 512): tiles are blended, the result is the same photo",
        )
    if tiled and overlap >= min(tile_h, tile_w) // 2:
        raise ValueError(f"--overlap {overlap} must be less than half the tile ({tile_h}x{tile_w})")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(rgb.dtype)
    whole_h, whole_w = max(height, tile_h), max(width, tile_w)
    rows, cols = _starts(whole_h, tile_h, overlap), _starts(whole_w, tile_w, overlap)
    result = np.empty((height, width, 3), dtype=out_dtype)
    band = np.zeros((3, tile_h, whole_w), dtype=np.float32)  # rows [band_top, band_top + tile_h) being blended
    weight = np.zeros((tile_h, whole_w), dtype=np.float32)
    band_top, done = rows[0], 0
    for top in rows:
        if top > band_top:  # rows above this tile row are final: no later tile reaches them
            _finish_rows(result, band, weight, band_top, top - band_top, restorer.name)
            shift = top - band_top
            band[:, : tile_h - shift], weight[: tile_h - shift] = band[:, shift:].copy(), weight[shift:].copy()
            band[:, tile_h - shift :], weight[tile_h - shift :] = 0, 0
            band_top = top
        for left in cols:
            piece = _tile(rgb, top, left, tile_h, tile_w, scale)
            restored = restorer.run(piece)[0].float().numpy()
            w = np.outer(
                _ramp(tile_h, overlap, top > 0, top + tile_h < whole_h),
                _ramp(tile_w, overlap, left > 0, left + tile_w < whole_w),
            )
            band[:, :, left : left + tile_w] += restored * w
            weight[:, left : left + tile_w] += w
            done += 1
            if progress:
                progress(done, len(rows) * len(cols))
    _finish_rows(result, band, weight, band_top, tile_h, restorer.name)
    return result


def _tile(rgb: np.ndarray, top: int, left: int, tile_h: int, tile_w: int, scale: float | None) -> Tensor:
    """The (1, 3, tile_h, tile_w) float input at (top, left), padded where the image is smaller than a tile."""
    piece = rgb[top : top + tile_h, left : left + tile_w]
    piece = piece.astype(np.float32) / scale if scale else piece
    x = torch.from_numpy(np.ascontiguousarray(piece.transpose(2, 0, 1)))[None]
    return _pad_to(x, tile_h, tile_w).contiguous()  # a small image becomes one (padded) tile


def _finish_rows(result: np.ndarray, band: np.ndarray, weight: np.ndarray, top: int, count: int, name: str) -> None:
    """Blend rows [top, top + count) of the band into `result` (cropped to the image), clipped and quantised."""
    count = min(count, result.shape[0] - top)
    if count <= 0:
        return
    width = result.shape[1]
    rows = band[:, :count, :width] / weight[:count, :width]
    if not np.isfinite(rows).all():  # clipping would turn NaN into black and call it a photo
        raise ImageError(f"{name} produced NaN or infinite values: the model or its weights are broken")
    rows = np.clip(rows.transpose(1, 2, 0), 0.0, 1.0)
    if result.dtype == np.float32:
        result[top : top + count] = rows
    else:
        levels = 65535.0 if result.dtype == np.uint16 else 255.0
        result[top : top + count] = (rows * levels + 0.5).astype(result.dtype)


def output_paths(files: list[Path], out: Path) -> list[Path]:
    """Where each input is written (`out/<its name>`), refused up front when one would overwrite an input photo or
    when two inputs share a name (both would land on one file)."""
    targets = [out / (f"{path.stem}.png" if path.suffix.lower() in WRITTEN_AS_PNG else path.name) for path in files]
    inputs = {path.resolve() for path in files}
    for target in targets:
        if target.resolve() in inputs:
            raise ImageError(
                f"writing {target} would overwrite the input photo {target.name}; choose another folder with --out"
            )
    seen: dict[Path, Path] = {}
    for path, target in zip(files, targets, strict=True):
        if target in seen:
            raise ImageError(
                f"{seen[target]} and {path} would both be written to {target}; restore them in separate runs "
                "(different --out folders) or rename one"
            )
        seen[target] = path
    return targets


def list_inputs(paths: list[Path], say: Callable[[str], None] | None = None) -> list[Path]:
    """Files named, and the images inside folders named; a folder without images is an error, and the other files
    of a folder are said (to `say`), not skipped silently."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
            others = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() not in SUFFIXES)
            if not images:
                raise ImageError(f"{path} holds no PNG, JPEG, TIFF, BMP, WebP or GIF images")
            if others and say:
                say(
                    f"skipped {len(others)} file(s) of {path} that are not images restore reads (PNG, JPEG, TIFF, "
                    f"BMP, WebP, GIF): {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}"
                )
            found += images
        elif path.is_file():
            found.append(path)
        elif path.is_symlink():
            raise ImageError(f"{path} is a symbolic link that leads nowhere (a loop, or its target is gone)")
        else:
            raise ImageError(f"{path} does not exist")
    return found


@dataclass(frozen=True)
class Restored:
    source: Path
    target: Path
    size: tuple[int, int]  # (width, height)
    seconds: float


def restore_files(
    restorer: Restorer,
    files: list[Path],
    targets: list[Path],
    tile: int,
    overlap: int,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Restored]:
    """Restore each file into its target (same format, metadata kept), yielding each one as it is written: an
    interrupted call has written exactly the photos it yielded."""
    import time

    for path, target in zip(files, targets, strict=True):
        photo = read_photo(path)
        start = time.perf_counter()
        report = (lambda done, total, name=path.name: progress(f"{name}: tile {done}/{total}")) if progress else None
        # Colour photos come back in their own bit depth (what will be written); gray or alpha ones as floats.
        plain = not photo.gray and photo.alpha is None
        depth = (np.uint16 if photo.bits == 16 else np.uint8) if plain else np.float32
        photo.rgb = restore_array(restorer, photo.rgb, tile, overlap, progress=report, out_dtype=depth)
        seconds = time.perf_counter() - start
        write_photo(target, photo)
        h, w = photo.rgb.shape[:2]
        yield Restored(path, target, (w, h), seconds)
