"""Keep freed tensor memory in the process: glibc's malloc otherwise maps every block over its mmap threshold
(128 KiB, growing to 32 MiB at most) fresh from the kernel and unmaps it on free, so each large activation of an
eager forward pass costs page faults on every touched page; at 512x512 tiles that is most of the CPU time, spent in
the kernel. `keep_freed_memory` is called once when edgeens is imported, so every edgeens process (CLI, workers,
tests) gets it without the user setting anything."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps: fewer brk calls and fresh-page faults
_TRIM_THRESHOLD = 1 << 30  # hand memory back only when over 1 GiB is free at the heap's top

STATE: dict[str, object] = {"applied": False, "reason": "not tried"}


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap (no mmap per tensor) and keep freed memory for reuse. Returns whether
    the settings took effect; a C library other than glibc (musl, macOS) is left alone, as is a process whose user
    has chosen the allocator's settings (any MALLOC_*_ variable) or set EDGEENS_KEEP_ALLOCATOR=1."""
    if STATE["applied"]:
        return True
    if not sys.platform.startswith("linux"):
        STATE["reason"] = f"not glibc ({sys.platform})"
        return False
    if os.environ.get("EDGEENS_KEEP_ALLOCATOR") == "1" or any(
        name.startswith("MALLOC_") and name.endswith("_") for name in os.environ
    ):
        STATE["reason"] = "left to the user's MALLOC_* / EDGEENS_KEEP_ALLOCATOR settings"
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        STATE["reason"] = "not glibc"
        return False
    ok = all(
        mallopt(parameter, value) == 1
        for parameter, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD))
    )
    STATE.update(applied=ok, reason="glibc mallopt: no mmap per block, trim over 1 GiB" if ok else "mallopt refused")
    return ok


def release_free_memory() -> None:
    """Give free heap memory back to the system (after a step whose peak the rest of the process does not need)."""
    if STATE["applied"]:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
