"""Export time, artifact size, peak memory and numerics of `edgeens compile` for the tiny and paper presets.

Each model is compiled by the real command in its own process (so peak memory is that model's), with random
weights (`--untrained`: export cost does not depend on the weights), to ExecuTorch (XNNPACK) and ONNX, at one
input size. The figures come from the compile.json files the command writes; the table goes to
benchmarks/results/compile.{txt,json}.

    python benchmarks/compile.py                     # tiny and paper, 256x256 (about an hour on 2 cores)
    python benchmarks/compile.py --presets tiny --size 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HYBRIDS = {"tiny": "R-M2-R-M4-R-M2-R-M2", "paper": "R-M2-M4-R-M6-R-M2-R"}
KINDS = ("restormer", "mambairunet", "hybrid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--size", default="256")
    parser.add_argument("--out", type=Path, default=Path("exports/bench"))
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        for kind in args.kinds:
            folder = args.out / f"{preset}-{kind}-{args.size}"
            command = [
                sys.executable,
                "-m",
                "edgeens",
                "compile",
                "--untrained",
                preset,
                "--kind",
                kind,
                "--size",
                args.size,
                "--out",
                str(folder),
                "--force",
                "--threads",
                "1",
            ]
            if kind == "hybrid":
                command += ["--arch", HYBRIDS[preset]]
            print("$", " ".join(command[1:]), flush=True)
            start = time.perf_counter()
            done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:])
                rows.append({"preset": preset, "kind": kind, "error": done.stdout.strip().splitlines()[-1:]})
                continue
            manifest = json.loads((folder / "compile.json").read_text())
            et, onnx = manifest["targets"]["executorch"], manifest["targets"]["onnx"]
            rows.append(
                {
                    "preset": preset,
                    "kind": kind,
                    "architecture": manifest["model"]["architecture"],
                    "parameters": manifest["model"]["parameters"],
                    "wall_seconds": round(wall, 1),
                    "pte_export_seconds": et["export_seconds"],
                    "pte_mib": round(et["bytes"] / 2**20, 1),
                    "pte_delegates": et["delegated_calls"],
                    "pte_portable_ops": et["portable_ops"],
                    "pte_max_abs_error": et["verification"]["max_abs_error"],
                    "onnx_export_seconds": onnx["export_seconds"],
                    "onnx_mib": round(onnx["bytes"] / 2**20, 1),
                    "onnx_max_abs_error": onnx["verification"]["max_abs_error"],
                    "peak_rss_gib": max(et["peak_rss_gib"], onnx["peak_rss_gib"]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "compile.json").write_text(json.dumps({"size": args.size, "threads": 1, "rows": rows}, indent=1))
    lines = [
        f"edgeens compile at {args.size}x{args.size}, 1 thread, random weights (python benchmarks/compile.py)",
        f"{'model':<28}{'params':>11}{'pte s':>8}{'pte MiB':>9}{'deleg.':>7}{'pte err':>10}"
        f"{'onnx s':>8}{'onnx MiB':>9}{'onnx err':>10}{'peak GiB':>9}{'wall s':>8}",
    ]
    for r in rows:
        name = f"{r['preset']} {r['kind']}"
        if "error" in r:
            lines.append(f"{name:<28} failed: {r['error']}")
            continue
        lines.append(
            f"{name:<28}{r['parameters']:>11,}{r['pte_export_seconds']:>8.0f}{r['pte_mib']:>9.1f}"
            f"{r['pte_delegates']:>7}{r['pte_max_abs_error']:>10.1e}{r['onnx_export_seconds']:>8.0f}"
            f"{r['onnx_mib']:>9.1f}{r['onnx_max_abs_error']:>10.1e}{r['peak_rss_gib']:>9.2f}{r['wall_seconds']:>8.0f}"
        )
    (args.results / "compile.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
