"""What this machine can hold, and the checks every size, patch, thread and worker option goes through before any
work starts (a value that cannot work fails in the first second, not minutes later or by exhausting memory)."""

from __future__ import annotations

import os

from edgeens.errors import EdgeensError

MAX_SIDE = 2048  # the largest deployment size, tile or patch edgeens takes (a phone camera tile is 256-1024)


class LimitError(EdgeensError):
    """An option outside what edgeens or this machine can do."""


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_bytes() -> int:
    """Physical memory of the machine."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # unknown: do not refuse on a guess


def check_workers(value: int, what: str = "--threads") -> int:
    """Threads or worker processes: at least 1, at most the machine's cores (more only slows torch down, 10-60x on
    two cores)."""
    if value < 1:
        raise LimitError(f"{what} must be at least 1, got {value}")
    if value > cores():
        raise LimitError(
            f"{what} {value} is more than this machine's {cores()} cores; oversubscribed threads make torch many "
            f"times slower: use at most {cores()}"
        )
    return value


def check_side(value: int, what: str = "--patch", allow_zero: bool = False) -> int:
    """A patch, crop or tile side: a positive multiple of 8 (the U-Net's three 2x downsamplings), at most MAX_SIDE;
    0 too where it means "the whole image"."""
    if allow_zero and value == 0:
        return value
    if value < 8 or value % 8:
        raise LimitError(f"{what} must be a positive multiple of 8, got {value}")
    if value > MAX_SIDE:
        raise LimitError(f"{what} {value} is larger than {MAX_SIDE}; use a smaller {what}")
    return value


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse work whose estimated peak memory is over 80% of the machine's."""
    limit = int(0.8 * memory_bytes())
    if needed > limit:
        raise LimitError(
            f"{what} needs about {needed / 2**30:.1f} GiB, more than this machine can hold "
            f"({memory_bytes() / 2**30:.1f} GiB); {fix}"
        )
