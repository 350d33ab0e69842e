from __future__ import annotations

import errno

import numpy as np
import pytest

from edgeens.files import NewerFormatError, atomic_path, format_name, read_json, upgrade_format, write_json


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


@pytest.mark.parametrize("content", [b"", b'{"front": [', b"\xff\xfe\x00", b"[1, 2]"])
def test_a_damaged_search_file_is_named_with_what_rebuilds_it(tmp_path, content: bytes) -> None:
    from typer.testing import CliRunner

    from edgeens.cli import app
    from edgeens.files import DamagedFileError
    from edgeens.search.loop import _open_identity

    (tmp_path / "search.json").write_bytes(content)
    with pytest.raises(DamagedFileError, match="search.json is damaged.*--force"):
        _open_identity(tmp_path / "search.json", {"penalty": "heuristic"}, force=False)
    (tmp_path / "front.json").write_bytes(content)
    result = CliRunner().invoke(app, ["finetune", "--search", str(tmp_path), "--out", str(tmp_path / "ft")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "front.json is damaged" in " ".join(result.output.split())


@pytest.mark.parametrize(
    "message",
    [
        "No space left on device (os error 28)",  # safetensors' SafetensorError
        "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0 file write failed",  # torch.save
    ],
)
def test_a_full_disk_in_a_native_writer_is_the_disk_full_error_with_the_file_named(tmp_path, message) -> None:
    from edgeens.errors import describe_os_error

    class NativeError(Exception):
        pass

    (tmp_path / "weights.safetensors").write_text("the previous, whole file")
    with pytest.raises(OSError) as caught, atomic_path(tmp_path / "weights.safetensors") as tmp:
        tmp.write_text("half")
        raise NativeError(message)
    assert caught.value.errno == errno.ENOSPC
    assert describe_os_error(caught.value).startswith(f"{tmp_path / 'weights.safetensors'}: No space left on device")
    assert (tmp_path / "weights.safetensors").read_text() == "the previous, whole file"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]  # no temporary left behind


def _write_many(target: str, value: int, start: float) -> None:
    import time

    while time.time() < start:  # both processes write over the same second, whenever each finished starting
        time.sleep(0.001)
    while time.time() < start + 1.0:
        write_json(target, {"writer": value})


def test_two_processes_writing_one_file_never_lose_each_others_temporary(tmp_path) -> None:
    # torchrun's ranks both record the folder's data.json: a shared temporary name made one rename the other's away
    import multiprocessing
    import time

    target = tmp_path / "data.json"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(target), value, time.time() + 5)) for value in (0, 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert read_json(target, "") in ({"writer": 0}, {"writer": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_a_file_of_any_older_format_version_is_upgraded_step_by_step_and_a_newer_one_refused() -> None:
    upgrades = (lambda r: {**r, "a": 1}, lambda r: {**r, "b": r["a"] + 1})  # v1 -> v2 -> v3
    assert format_name("thing", upgrades) == "edgeens.thing.v3"
    assert upgrade_format({"format": "edgeens.thing.v1"}, "thing", upgrades, "f") == {
        "format": "edgeens.thing.v3",
        "a": 1,
        "b": 2,
    }
    assert upgrade_format({"format": "edgeens.thing.v2", "a": 5}, "thing", upgrades, "f")["b"] == 6  # v2: one step
    current = {"format": "edgeens.thing.v3", "a": 0, "b": 0}
    assert upgrade_format(current, "thing", upgrades, "f") == current
    for other in ({"format": "edgeens.other.v1"}, {"format": "thing"}, {}, []):
        assert upgrade_format(other, "thing", upgrades, "f") is None
    with pytest.raises(NewerFormatError, match="f is thing format version 4, made by a newer edgeens"):
        upgrade_format({"format": "edgeens.thing.v4"}, "thing", upgrades, "f")
