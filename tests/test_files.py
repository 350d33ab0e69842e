from __future__ import annotations

import errno

import numpy as np
import pytest

from edgeens.files import atomic_path, write_json


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "front.json"
    write_json(target, {"evaluations": 3})
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text('{"evaluations": ')  # half written when the disk fills up
        _full_disk()
    assert target.read_text().startswith('{\n  "evaluations": 3')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.json"]
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:  # Ctrl-C in the middle: the same
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.json"]


def test_restore_on_a_full_disk_says_so_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from edgeens.data.images import ImageError
    from edgeens.restore import read_photo, write_photo

    source = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(source)
    photo = read_photo(source)
    monkeypatch.setattr(Image.Image, "save", _full_disk)
    with pytest.raises(ImageError, match="No space left on device"):
        write_photo(tmp_path / "out.png", photo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
