from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.data.images import ImageError
from edgeens.models import Restormer
from edgeens.restore import Restorer, read_photo, restore_array, write_photo

runner = CliRunner()


def local_model() -> Restorer:
    """Three 3x3 convolutions: a receptive field of 7 pixels, inside a 16-pixel overlap."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.Conv2d(8, 3, 3, padding=1),
    ).eval()

    def run(x):
        with torch.no_grad():
            return x + 0.1 * net(x)

    return Restorer("local", run, None)


def test_tiles_blend_to_the_untiled_output_for_a_local_model() -> None:
    image = np.random.default_rng(0).random((150, 203, 3)).astype(np.float32)  # sides not multiples of 8
    whole = restore_array(local_model(), image, tile=0)
    tiled = restore_array(local_model(), image, tile=64, overlap=16)
    assert whole.shape == tiled.shape == image.shape
    # Away from the reflect-padded border (which differs between one big pad and per-image padding) they agree.
    assert np.abs(whole[:144, :200] - tiled[:144, :200]).max() <= 1e-4


def test_a_global_model_restores_in_tiles_close_to_one_piece() -> None:
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()

    def run(x):
        with torch.no_grad():
            return model(x)

    restorer = Restorer("restormer", run, None)
    image = np.random.default_rng(1).random((96, 120, 3)).astype(np.float32)
    whole = restore_array(restorer, image, tile=0)
    assert np.array_equal(whole, restore_array(restorer, image, tile=128))  # one tile covers it: the same pass
    tiled = restore_array(restorer, image, tile=64, overlap=16)
    assert 0 < np.abs(whole - tiled).max() < 0.5  # channel attention sees the tile, not the image: close, not equal


def test_gray_alpha_and_16_bit_survive_a_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(2)
    gray16 = (rng.random((20, 24)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    rgba = (rng.random((20, 24, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for name in ("gray16.png", "rgba.png"):
        photo = read_photo(tmp_path / name)
        write_photo(tmp_path / f"out-{name}", photo)
        again = Image.open(tmp_path / f"out-{name}")
        assert again.mode == Image.open(tmp_path / name).mode
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out-rgba.png"))[..., 3], rgba[..., 3])  # alpha kept
    assert np.abs(np.asarray(Image.open(tmp_path / "out-gray16.png")).astype(int) - gray16).max() <= 1
    photo = read_photo(tmp_path / "rgba.png")
    photo.bits = 16
    write_photo(tmp_path / "rgba16.tif", photo)
    assert read_photo(tmp_path / "rgba16.tif").bits == 16


def test_restore_command_handles_folders_and_refuses_bad_input(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray((np.random.default_rng(3).random((40, 52, 3)) * 255).astype(np.uint8)).save(photos / "a.jpg")
    args = ["restore", str(photos), "--model", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--tile", "32", "--overlap", "8"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.jpg").size == (52, 40) and "peak memory" in result.output
    (photos / "b.png").write_bytes((photos / "a.jpg").read_bytes()[:200])  # truncated
    (tmp_path / "empty").mkdir()
    cases = [
        (args, "b.png"),
        (["restore", str(tmp_path / "empty"), "--model", str(tmp_path / "m.safetensors")], "holds no PNG"),
        (["restore", str(photos / "a.jpg"), "--model", str(tmp_path / "none.pte")], "does not exist"),
    ]
    for case, message in cases:
        outcome = runner.invoke(app, case)
        assert outcome.exit_code == 2 and message in " ".join(outcome.output.split()), outcome.output
    with pytest.raises(ImageError, match="not writable|cannot write"):
        write_photo(tmp_path / "missing-folder" / "x.png", read_photo(photos / "a.jpg"))


def _small_model(tmp_path, nan: bool = False):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if nan:
        state["output.weight"] = torch.full_like(state["output.weight"], float("nan"))
    path = tmp_path / ("nan.safetensors" if nan else "m.safetensors")
    save_file(state, str(path))
    return path


def test_16_bit_alpha_pngs_keep_16_bits_and_gray_stays_gray(tmp_path) -> None:
    from edgeens.data.png16 import read_png16, write_png16

    rng = np.random.default_rng(4)
    for name, channels in (("rgba16.png", 4), ("gray-alpha16.png", 2)):
        pixels = (rng.random((12, 16, channels)) * 65535).astype(np.uint16)
        write_png16(tmp_path / name, pixels)
        photo = read_photo(tmp_path / name)
        assert photo.bits == 16 and photo.gray == (channels == 2) and photo.alpha is not None
        write_photo(tmp_path / f"out-{name}", photo)
        again = read_png16(tmp_path / f"out-{name}")
        assert again.shape == pixels.shape  # not widened to 8-bit RGBA
        assert np.abs(again.astype(int) - pixels).max() <= 1


def test_exif_orientation_is_applied(tmp_path) -> None:
    image = Image.fromarray((np.random.default_rng(5).random((30, 50, 3)) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": how phones store portrait photos
    image.save(tmp_path / "phone.jpg", exif=exif)
    assert read_photo(tmp_path / "phone.jpg").rgb.shape[:2] == (50, 30)


def test_a_decompression_bomb_header_is_named(tmp_path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)  # 1.6 gigapixels claimed, a few bytes of data
    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )
    with pytest.raises(ImageError, match="decompression-bomb"):
        read_photo(tmp_path / "bomb.png")
    from edgeens.data.images import read_image

    with pytest.raises(ImageError, match="decompression-bomb"):
        read_image(tmp_path / "bomb.png")


def test_restore_never_overwrites_an_input_nor_writes_two_photos_to_one_file(tmp_path) -> None:
    model = _small_model(tmp_path)
    rng = np.random.default_rng(6)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / folder / "x.png")
    original = (tmp_path / "a" / "x.png").read_bytes()
    same = ["restore", str(tmp_path / "a" / "x.png"), "--model", str(model), "--out", str(tmp_path / "a")]
    outcome = runner.invoke(app, same)
    assert outcome.exit_code == 2 and "would overwrite the input photo" in " ".join(outcome.output.split())
    assert (tmp_path / "a" / "x.png").read_bytes() == original
    both = ["restore", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "--model", str(model)]
    outcome = runner.invoke(app, [*both, "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 2 and "would both be written to" in " ".join(outcome.output.split())
    assert not (tmp_path / "out" / "x.png").exists()


def test_a_checkpoint_with_nan_weights_is_refused_not_written_black(tmp_path) -> None:
    model = _small_model(tmp_path, nan=True)
    Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(tmp_path / "x.png")
    outcome = runner.invoke(
        app, ["restore", str(tmp_path / "x.png"), "--model", str(model), "--out", str(tmp_path / "o")]
    )
    assert outcome.exit_code == 2 and "NaN" in outcome.output
    assert not (tmp_path / "o" / "x.png").exists()
    broken = Restorer("broken", lambda x: x * float("nan"), None)
    with pytest.raises(ImageError, match="NaN or infinite"):
        restore_array(broken, np.zeros((16, 16, 3), np.float32))


def test_ctrl_c_says_what_was_written_and_what_was_not(tmp_path, monkeypatch) -> None:
    import edgeens.restore

    model = _small_model(tmp_path)
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((24, 32, 3), 100, np.uint8)).save(tmp_path / "in" / name)
    real, calls = edgeens.restore.restore_array, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(edgeens.restore, "restore_array", interrupted)
    outcome = runner.invoke(app, ["restore", str(tmp_path / "in"), "--model", str(model), "--out", str(tmp_path / "o")])
    text = " ".join(outcome.output.split())
    assert outcome.exit_code == 130
    assert "1 of 3 photo(s) written" in text and "a.png" in text and "not restored" in text and "c.png" in text
    assert (tmp_path / "o" / "a.png").is_file() and not (tmp_path / "o" / "b.png").exists()


def test_a_whole_image_too_large_for_memory_is_refused_before_it_runs(tmp_path, monkeypatch) -> None:
    import numpy as np
    import torch

    import edgeens.limits
    from edgeens.limits import LimitError
    from edgeens.models import Restormer
    from edgeens.restore import eager_restorer, restore_array

    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
    restorer = eager_restorer(model, "small")
    monkeypatch.setattr(edgeens.limits, "memory_bytes", lambda: 64 << 20)  # a machine of 64 MiB
    image = np.zeros((512, 512, 3), np.float32)
    with pytest.raises(LimitError, match="restoring 512x512 pixels in one piece.*smaller --tile"):
        restore_array(restorer, image, tile=0)
    assert restore_array(restorer, image[:64, :64], tile=0).shape == (64, 64, 3)  # small enough: it runs


def test_bmp_webp_and_gif_are_restored_and_other_files_are_named_not_skipped_silently(tmp_path) -> None:
    model = _small_model(tmp_path)
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    picture = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(folder / "a.bmp")
    Image.fromarray(picture).save(folder / "b.webp", lossless=True)
    Image.fromarray(picture).convert("P").save(folder / "c.gif")
    (folder / "notes.txt").write_text("not a photo")
    result = runner.invoke(app, ["restore", str(folder), "--model", str(model), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.bmp", "b.webp", "c.png"]  # the GIF's restoration as PNG: 256 colours would undo it
    assert "skipped 1 file(s)" in " ".join(result.output.split()) and "notes.txt" in result.output
    for name in written:
        with Image.open(tmp_path / "out" / name) as image:
            assert image.size == (32, 24) and image.mode == "RGB"


def test_exif_and_the_colour_profile_survive_a_restore_with_the_orientation_applied_once(tmp_path) -> None:
    from PIL import ImageCms

    model = _small_model(tmp_path)
    image = Image.fromarray((np.random.default_rng(6).random((24, 40, 3)) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    exif[0x010F] = "Camera Maker"  # Make
    exif[0x0132] = "2026:12:06 10:00:00"  # DateTime
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 0.0)  # GPSLatitude
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (tmp_path / "in").mkdir()
    image.save(tmp_path / "in" / "phone.jpg", exif=exif, icc_profile=icc)
    args = ["restore", str(tmp_path / "in" / "phone.jpg"), "--model", str(model), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "phone.jpg") as restored:
        kept = restored.getexif()
        assert restored.size == (24, 40)  # upright, as the phone showed it
        assert kept[0x0112] == 1 and kept[0x010F] == "Camera Maker" and kept[0x0132] == "2026:12:06 10:00:00"
        assert kept.get_ifd(0x8825)[2] == (48.0, 51.0, 0.0)
        assert restored.info.get("icc_profile") == icc


def test_an_input_that_is_a_symlink_loop_is_called_so(tmp_path) -> None:
    model = _small_model(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    result = runner.invoke(
        app, ["restore", str(tmp_path / "loop"), "--model", str(model), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "symbolic link that leads nowhere" in " ".join(result.output.split())


def test_a_restore_without_a_terminal_prints_its_tile_progress(tmp_path) -> None:
    model = _small_model(tmp_path)
    Image.fromarray((np.random.default_rng(7).random((96, 160, 3)) * 255).astype(np.uint8)).save(tmp_path / "w.png")
    args = ["restore", str(tmp_path / "w.png"), "--model", str(model), "--tile", "32", "--overlap", "8"]
    args += ["--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if ": tile " in line]
    assert result.exit_code == 0 and lines[0].endswith("tile 1/" + lines[-1].split("/")[-1])
    assert lines[-1].split("tile ")[1].split("/")[0] == lines[-1].split("/")[-1]  # the last tile said too
