"""What int8 buys block by block: every stage program of a folder in float and in w8a8, timed in the same shuffled
rounds (so the machine's drift falls on both alike), with the speed-up per (stage, choice).

    python benchmarks/int8_stages.py PROGRAMS_FOLDER [--rounds 4] [--json benchmarks/results/int8_stages.json]

The folder is one that `edgeens profile` filled twice, once plain and once with `--quantize w8a8` (stages.json
names both files of each program). Two latency tables measured one after the other carry whatever the machine
did between them; this does not. One thread.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from edgeens.files import write_json
from edgeens.profile.host import executorch_runner, host_description, measure_programs
from edgeens.profile.request import TimingPolicy
from edgeens.workers import set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    set_threads(1)
    programs = json.loads((args.folder / "stages.json").read_text())["programs"]
    both = {key: entry for key, entry in programs.items() if "file" in entry and "file-w8a8" in entry}
    if not both:
        raise SystemExit(
            f"{args.folder} has no program in both precisions: run edgeens profile with and without --quantize"
        )
    runners = {}
    for key, entry in both.items():
        example = (torch.randn(entry["input_shape"], generator=torch.Generator().manual_seed(0)),)
        for precision, field in (("fp32", "file"), ("w8a8", "file-w8a8")):
            runners[f"{key}/{precision}"] = partial(executorch_runner, args.folder / entry[field], example)
    policy = TimingPolicy(rounds=args.rounds, min_repeats=20, max_repeats=80, max_seconds=8.0)
    samples = measure_programs(runners, policy, progress=print)
    rows = []
    for key in both:
        fp32, w8a8 = (float(np.median(samples[f"{key}/{p}"])) for p in ("fp32", "w8a8"))
        rows.append({"program": key, "fp32_ms": fp32, "w8a8_ms": w8a8, "speedup": fp32 / w8a8})
    total = {p: sum(r[f"{p}_ms"] for r in rows) for p in ("fp32", "w8a8")}
    result = {
        "folder": str(args.folder),
        "threads": 1,
        "policy": policy.to_dict(),
        "host": host_description(),
        "rows": rows,
        "sum_ms": total,
        "sum_speedup": total["fp32"] / total["w8a8"],
    }
    print("| program | fp32 ms | w8a8 ms | speed-up |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['program']} | {row['fp32_ms']:.1f} | {row['w8a8_ms']:.1f} | {row['speedup']:.2f}x |")
    print(f"| all programs | {total['fp32']:.1f} | {total['w8a8']:.1f} | {result['sum_speedup']:.2f}x |")
    if args.json:
        write_json(args.json, result, indent=1)


if __name__ == "__main__":
    main()
