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
