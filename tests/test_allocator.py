"""Eager inference keeps freed tensor memory: a second large allocation reuses the first one's pages instead of
faulting in fresh ones (glibc's default maps and unmaps every block over its threshold)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, resource
import torch
import edgeens.allocator as allocator
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = torch.ones(16 << 20) * 2  # 64 MiB blocks (over glibc's largest mmap threshold): a temporary and a result
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults[-6:], "applied": allocator.STATE["applied"]}))
"""


def run_probe(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    done = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_edgeens_keeps_freed_memory_for_reuse() -> None:
    pages = (64 << 20) // 4096
    kept = run_probe()
    default = run_probe(EDGEENS_KEEP_ALLOCATOR="1")
    assert kept["applied"] and not default["applied"]
    # The median of the last 6 rounds: a round whose pages the kernel reclaimed meanwhile (memory pressure from a
    # parallel test worker) faults once more without changing what the allocator does.
    median = {name: sorted(probe["faults"])[3] for name, probe in (("kept", kept), ("default", default))}
    assert median["default"] > 2 * pages  # every round faults in both blocks' pages afresh
    assert median["kept"] < pages // 10  # after a few rounds the same memory is handed out again


def test_users_malloc_settings_are_left_alone() -> None:
    assert not run_probe(MALLOC_ARENA_MAX_="2")["applied"]
