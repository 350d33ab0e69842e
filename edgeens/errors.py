"""The one base class of edgeens' user-facing errors: each says what is wrong and what to do, and the CLI prints
it as one line (never a traceback). A ValueError, so callers that predate it keep working."""

from __future__ import annotations

import errno


class EdgeensError(ValueError):
    """A problem the user can fix: bad input, a missing or damaged artifact, a busy folder, an unreachable service."""


def describe_os_error(err: OSError) -> str:
    """An OSError of a file the user named, as one line with what to do about it."""
    where = f"{err.filename}: " if err.filename else ""
    hint = {
        errno.ENOSPC: "the disk is full; free space and run the command again (it resumes)",
        errno.EROFS: "the file system is read-only; choose a writable --out",
        errno.EACCES: "permission denied; choose a folder you can write (--out)",
        errno.ENOTDIR: "a path that should be a folder is a file; choose another --out",
        errno.EEXIST: "a file is in the way of a folder; choose another --out",
        errno.ENOENT: "no such file or folder; check the path",
    }.get(err.errno, "check the path and try again")
    return f"{where}{err.strerror or err}; {hint}"
