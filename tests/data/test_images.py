from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeens.data.images import ImageError, read_image, write_image


def test_round_trip_8_bit_rgb_and_16_bit_gray(tmp_path) -> None:
    rgb = np.random.default_rng(0).random((9, 7, 3)).astype(np.float32)
    write_image(tmp_path / "rgb.png", rgb)
    back = read_image(tmp_path / "rgb.png")
    assert back.shape == (9, 7, 3) and np.abs(back - rgb).max() <= 0.5 / 255 + 1e-6
    gray = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5, 1)
    write_image(tmp_path / "gray.png", gray, bits=16)
    back = read_image(tmp_path / "gray.png", channels=1)
    assert np.abs(back - gray).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize(("mode", "match"), [("RGBA", "mode RGBA"), ("P", "mode P"), ("L", "1 channel")])
def test_alpha_palette_and_gray_files_are_named_not_converted(tmp_path, mode: str, match: str) -> None:
    path = tmp_path / f"odd_{mode}.png"
    Image.new(mode, (4, 4)).save(path)
    with pytest.raises(ImageError, match=match) as err:
        read_image(path, channels=3)
    assert str(path) in str(err.value)


def test_unreadable_file_is_named(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ImageError, match="broken.png: not a readable image"):
        read_image(tmp_path / "broken.png")


def test_a_large_genuine_image_opens_without_pillows_raw_warning(tmp_path, monkeypatch, recwarn) -> None:
    from PIL import Image

    write_image(tmp_path / "big.png", np.full((12, 12, 3), 0.5, np.float32))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 pixels: over the guard, under twice it
    assert read_image(tmp_path / "big.png").shape == (12, 12, 3)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
