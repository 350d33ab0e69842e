"""Run-directory files: nothing is written in place (DESIGN.md), so a kill never leaves half a file."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeens.errors import EdgeensError


class FolderBusyError(EdgeensError):
    """Another process is writing the same run folder."""


class DamagedFileError(EdgeensError):
    """A file edgeens wrote earlier is no longer what it wrote (empty, cut short, edited, overwritten)."""


class OutputFolderError(EdgeensError):
    """An output folder that cannot be created or written."""


class NewerFormatError(EdgeensError):
    """A file written by a newer edgeens, in a format version this one does not read."""


# --- file formats: `"format": "edgeens.<name>.v<N>"` in every file edgeens writes, and one upgrade per version -----

_FORMAT = re.compile(r"edgeens\.([a-z_]+)\.v(\d+)$")


def format_name(name: str, upgrades: Sequence[Callable[[dict], dict]]) -> str:
    """The current format of `name`: one version past the last upgrade (`edgeens.latency.v2` after one)."""
    return f"edgeens.{name}.v{len(upgrades) + 1}"


def upgrade_format(
    record: dict, name: str, upgrades: Sequence[Callable[[dict], dict]], where: str | Path
) -> dict | None:
    """`record` (a file's JSON, or a safetensors file's metadata) in the current format of `name`: `upgrades[i]`
    turns version i+1 into version i+2, so a file of any older version is read as the current one, and the readers
    know only the current one. None when `record` is not a `name` file at all (the caller names the file and the
    fix); a version newer than this edgeens reads is refused."""
    match = _FORMAT.match(str(record.get("format", ""))) if isinstance(record, dict) else None
    if match is None or match.group(1) != name:
        return None
    version, current = int(match.group(2)), len(upgrades) + 1
    if version > current:
        raise NewerFormatError(
            f"{where} is {name} format version {version}, made by a newer edgeens; this one reads up to version "
            f"{current}: upgrade edgeens (pip install -U edgeens)"
        )
    for upgrade in upgrades[version - 1 :]:
        record = upgrade(dict(record))
    return {**record, "format": format_name(name, upgrades)}


def writable_folder(folder: str | Path, option: str = "--out") -> Path:
    """Create `folder` (and its parents) and check that this process can write in it, before any work: a command
    that would compute for minutes and then fail to save its result refuses at once instead."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        why = {
            errno.EEXIST: "a file of that name is in the way",
            errno.ENOTDIR: "a file is in the way of one of its folders",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
            errno.ENOSPC: "the disk is full",
        }.get(err.errno, err.strerror or str(err))
        raise OutputFolderError(f"{folder} cannot be written ({why}); choose another folder with {option}") from None
    return folder


def read_json(path: str | Path, fix: str, kind: type = dict) -> Any:
    """The JSON value in `path`, which must be a `kind`; if it is damaged, one error that names the file and `fix`
    (what rebuilds it)."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = "not text" if isinstance(err, UnicodeDecodeError) else f"not JSON: {err.msg} at line {err.lineno}"
        raise DamagedFileError(f"{path} is damaged ({reason}); {fix}") from None
    if not isinstance(value, kind):
        raise DamagedFileError(f"{path} is damaged (a JSON {type(value).__name__}, not a {kind.__name__}); {fix}")
    return value


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` (`<name>.<pid>.tmp<suffix>`: give the suffix a writer needs to see) to write
    to; it is renamed over `path` when the block ends and removed if the block fails, so a full disk, an error or
    Ctrl-C leaves the old file whole and no half-written temporary behind. The process id keeps two processes
    writing the same file (torchrun's ranks) from renaming each other's temporary away."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        # Writers in C++ or Rust (torch.save's "file write failed", safetensors' SafetensorError) say "no space" in
        # their own words: the disk-full error every command already explains, with the file named.
        if isinstance(err, Exception) and _disk_full(err):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise


def _disk_full(err: Exception) -> bool:
    text = str(err).lower()
    return "no space left" in text or ("write failed" in text and "file" in text) or "iostream error" in text


def write_json(path: str | Path, value: Any, indent: int | None = 2) -> None:
    """Write `value` as JSON to a temporary file, then rename it over `path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=indent) + "\n")


def now() -> str:
    """The current UTC time, ISO 8601 to the second (recorded in every artifact)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold `folder/.lock` while this process writes `folder`: a second process on the same folder stops at once,
    told who holds it, instead of interleaving its records with the first's. The lock goes with the process (a
    killed holder frees it), so a stale lock file never blocks a resume."""
    folder = writable_folder(folder)
    handle = (folder / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FolderBusyError(
            f"{folder} is being written by another edgeens process ({holder}); wait for it to finish or use "
            "another folder"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: {what}, since {now()}\n")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_holder(folder: str | Path) -> str | None:
    """Who holds `folder`'s lock (the line `folder_lock` wrote: pid, command, since when), or None when nobody
    does: a reader that finds a folder unfinished can say it is being written rather than that it was never made."""
    path = Path(folder) / ".lock"
    if not path.is_file():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
