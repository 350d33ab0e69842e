"""Where an int8 program spends its time: ONNX Runtime's own per-node profile of the float and quantized ONNX
programs that `edgeens precision` wrote, summed by operator type, and the operator mix of the quantized ExecuTorch
graph (how many quantize / dequantize nodes sit between the int8 kernels).

    python benchmarks/int8_ops.py PRECISION_FOLDER [PRECISION_FOLDER ...] [--runs 20] [--json out.json]

Each folder is an `edgeens precision --out` folder (fp32/model.onnx, w8a8/model-w8a8.onnx, ...). One thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgeens.profile.host import host_description


def onnx_profile(path: Path, runs: int) -> dict[str, float]:
    """Mean microseconds per run spent in each operator type (ONNX Runtime's profiler, kernel time, 1 thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        x = np.random.default_rng(0).random(spec.shape, dtype=np.float32)
        for _ in range(runs):  # every run is profiled: the first (allocation) counts in a large mean only slightly
            session.run(None, {spec.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    by_type: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"].get("op_name", "?")] += float(event["dur"])
    return {op: total / runs for op, total in sorted(by_type.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"host": host_description(), "threads": 1, "runs": args.runs, "folders": {}}
    for folder in args.folders:
        programs = {
            "fp32": folder / "fp32" / "model.onnx",
            "w8a8": folder / "w8a8" / "model-w8a8.onnx",
            "w8a16": folder / "w8a16" / "model-w8a16.onnx",
        }
        entry = {}
        for precision, path in programs.items():
            if not path.is_file():
                continue
            profile = onnx_profile(path, args.runs)
            total = sum(profile.values())
            entry[precision] = {"total_us": total, "by_op_us": profile}
            top = ", ".join(f"{op} {us / 1e3:.1f} ms ({us / total:.0%})" for op, us in list(profile.items())[:6])
            print(f"{folder.name} {precision}: {total / 1e3:.1f} ms in kernels; {top}")
        compiled = folder / "w8a8" / "compile.json"
        if compiled.is_file():
            manifest = json.loads(compiled.read_text())
            entry["executorch_w8a8_graph"] = {
                k: v.get("portable_ops") for k, v in manifest["targets"].items() if k.startswith("executorch")
            }
        results["folders"][str(folder)] = entry
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
