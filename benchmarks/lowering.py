"""Lowering time of stage programs with and without the shallow provenance of `lower_to_executorch`.

torch.fx deep-copies each rewritten node's whole provenance chain, which grows by a level per pass; edgeens keeps
one level while lowering (`edgeens.compile.executorch._shallow_provenance`). This times both on the same stage
programs, interleaved (A B A B ...) so that any other load on the machine falls on both alike, and checks that the
two programs compute bitwise the same outputs.

    python benchmarks/lowering.py [--programs latent--S2 encoder3--M2] [--pairs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

from edgeens.compile import executorch as executorch_lowering
from edgeens.compile.executorch import lower_to_executorch, run_program
from edgeens.compile.stages import StageProgram, program_module
from edgeens.models.restormer import Restormer
from edgeens.models.space import PRESETS, SearchSpace, parse_families
from edgeens.profile.host import host_description


def lower_seconds(module: torch.nn.Module, example: torch.Tensor, shallow: bool) -> tuple[float, torch.Tensor]:
    patch = executorch_lowering._shallow_provenance
    if not shallow:
        executorch_lowering._shallow_provenance = contextlib.nullcontext
    try:
        start = time.perf_counter()
        program = lower_to_executorch(module, (example,))
        seconds = time.perf_counter() - start
    finally:
        executorch_lowering._shallow_provenance = patch
    return seconds, run_program(program.buffer, (example,))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--programs", nargs="+", default=["latent--S2", "encoder3--M2"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher = Restormer(**PRESETS[args.preset].to_dict()).eval()
    space = SearchSpace(teacher.config, parse_families("M,L,S,G"))
    stages = {stage.name: stage for stage in space.stages}
    cpu = host_description()["cpu"]
    print(f"lowering time, {args.preset} stage programs at {args.size}x{args.size}, 1 thread, {cpu}")
    print("(each program lowered alone in this process; other load on the machine falls on both columns alike)")
    print(f"{'program':16} {'full s':>8} {'shallow s':>10} {'ratio':>6}  same outputs")
    rows = []
    for key in args.programs:
        stage, choice = key.split("--")
        module, example = program_module(teacher, space, StageProgram(stages[stage], choice), args.size, args.size)
        times: dict[bool, list[float]] = {False: [], True: []}
        outputs: dict[bool, torch.Tensor] = {}
        for _ in range(args.pairs):
            for shallow in (False, True):
                seconds, outputs[shallow] = lower_seconds(module, example, shallow)
                times[shallow].append(seconds)
        full, shallow = statistics.median(times[False]), statistics.median(times[True])
        same = bool(torch.equal(outputs[False], outputs[True]))
        rows.append({"program": key, "full_s": times[False], "shallow_s": times[True], "same_outputs": same})
        print(f"{key:16} {full:8.1f} {shallow:10.1f} {shallow / full:6.2f}  {same}", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"preset": args.preset, "size": args.size, "threads": 1, "cpu": cpu, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
