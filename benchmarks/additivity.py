"""Do stage latencies add up? One architecture's parts timed alone, and the same parts linked into one program.

The calibrated prediction is a sum of stage latencies taken from a table measured earlier. This separates the two
ways it can miss a whole-network measurement: the machine's speed drifting between the table and now (table vs
parts timed now), and running the parts together costing something alone-timing misses (linked vs the sum of the
parts timed now, in the same run). The parts are the table's own stage programs and the linker's glue programs
(edgeens.compile.link), so both sides run exactly the same delegates.

    python benchmarks/additivity.py --table profiles/host--...--paper-mlsg.json \
        --programs exports/stages-paper-256x256 --preset paper R-R-R-R-R-R-R-R G1-G6-G1-G6-G4-G1-G1-G1 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edgeens.compile.link import GLUE, GLUE_FOLDER, link_architecture
from edgeens.compile.stages import stage_input_shape
from edgeens.models.restormer import Restormer
from edgeens.models.space import PRESETS
from edgeens.profile.host import executorch_runner, host_description, time_runs
from edgeens.profile.request import TimingPolicy
from edgeens.profile.table import LatencyTable
from edgeens.workers import set_threads

POLICY = TimingPolicy(min_repeats=10, max_repeats=30, max_seconds=5.0)


def median_ms(program: Path | bytes, shapes: list[tuple[int, ...]]) -> float:
    generator = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(shape, generator=generator) for shape in shapes)
    return float(np.median(time_runs(executorch_runner(program, inputs), POLICY)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("architectures", nargs="+")
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--programs", type=Path, required=True, help="the table's stage-programs folder")
    parser.add_argument("--preset", default="paper", help="the preset teacher the table was measured for")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.manual_seed(0)  # the teacher exactly as `edgeens profile --preset` makes it
    teacher = Restormer(**PRESETS[args.preset].to_dict()).eval()
    table = LatencyTable.load(args.table)
    manifest = json.loads((args.programs / "stages.json").read_text())
    set_threads(1)
    shapes = {"input": (1, teacher.config.inp_channels, table.height, table.width)}
    shapes |= {s.name: stage_input_shape(s, table.height, table.width) for s in table.space.stages}
    rows = []
    print(f"threads 1; {host_description()['cpu']}; table measured {table.date}")
    print(f"{'architecture':28} {'table ms':>9} {'parts now':>9} {'linked':>9} {'now/table':>9} {'linked/parts':>12}")
    for architecture in args.architectures:
        tokens = table.space.parse(architecture)
        glue = {name: median_ms(args.programs / GLUE_FOLDER / f"{name}.pte", [shapes[r] for r in reads])
                for name, reads in GLUE.items()}  # fmt: skip
        stages = {
            stage.name: median_ms(args.programs / manifest["programs"][f"{stage.name}--{choice}"]["file"],
                                  [shapes[stage.name]])
            for stage, choice in zip(table.space.stages, tokens, strict=True)
        }  # fmt: skip
        linked = median_ms(link_architecture(teacher, tokens, args.programs), [shapes["input"]])
        # like for like: table stages + table fixed part, against stages now + glue now
        row = {
            "architecture": architecture,
            "table_ms": table.predict_ms(tokens),
            "parts_now_ms": sum(glue.values()) + sum(stages.values()),
            "linked_ms": linked,
            "glue_now_ms": glue,
            "stages_now_ms": stages,
            "stages_table_ms": {
                s.name: table.stages[s.name][c].median_ms for s, c in zip(table.space.stages, tokens, strict=True)
            },
        }
        rows.append(row)
        print(
            f"{architecture:28} {row['table_ms']:9.0f} {row['parts_now_ms']:9.0f} {linked:9.0f} "
            f"{row['parts_now_ms'] / row['table_ms']:9.2f} {linked / row['parts_now_ms']:12.2f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"host": host_description(), "threads": 1, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
