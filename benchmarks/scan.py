"""Selective-scan benchmark on the SS2D shapes of a 256x256 image at the paper's width.

    python benchmarks/scan.py [--levels 1 2 3 4] [--repeats 3] [--json out.json]

Per level (level 1: L = 65536, 4 directions x 96 channels, state 16; level 2: 16384 x 192; level 3: 4096 x 384;
level 4: 1024 x 768), it times every implementation in eager PyTorch (the chunked scan in the schedule these
shapes get, blocks, and in its two-pass schedule for comparison) and the chunked scan in the ExecuTorch runtime
(XNNPACK-lowered), with peak extra memory, and in the same run the floor: a bare exponential plus two multiply-adds
over the same number of (channel, position, state) elements (torch.exp2, the faster of torch's two exponentials
here and the one the eager scan uses; `floor_exp` is the same floor with torch.exp, as results before 2026-12-07
measured it). Each measurement runs in a fresh process so that
peak memory (ru_maxrss above the level reached after building the inputs) belongs to it alone. One thread
everywhere (torch intra-op and the ExecuTorch thread pool); the thread count is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEVELS = {1: (65536, 96), 2: (16384, 192), 3: (4096, 384), 4: (1024, 768)}
DIRECTIONS, STATE = 4, 16
# The floor runs exp and two multiply-adds over blocks: 2^20 elements (4 MiB, twice this CPU's L2, as any op over
# a full scan step) is the main floor; 2^16 elements (in L2) is the best case, printed as a stricter reference.
FLOOR_BLOCKS = {"floor": 1 << 20, "floor_in_L2": 1 << 16, "floor_exp": 1 << 20}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux reports KiB


def scan_inputs(level: int):
    import torch
    import torch.nn.functional as F

    L, di = LEVELS[level]
    d = DIRECTIONS * di
    g = torch.Generator().manual_seed(level)
    # MambaIR-initialisation-like inputs: dt = softplus(x + inverse-softplus(U_log[1e-3, 0.1])), u = SiLU(randn).
    return {
        "u": F.silu(torch.randn(1, d, L, generator=g)),
        "delta": 0.5 * torch.randn(1, d, L, generator=g),
        "A": -torch.arange(1, STATE + 1, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(1, DIRECTIONS, STATE, L, generator=g),
        "C": torch.randn(1, DIRECTIONS, STATE, L, generator=g),
        "D": torch.ones(d),
        "delta_bias": torch.log(torch.expm1(torch.exp(torch.empty(d).uniform_(-6.9, -2.3, generator=g)))),
    }


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-touch page faults and lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def child(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    torch.set_num_threads(1)
    from edgeens.models.scan import selective_scan

    x = scan_inputs(args.level)
    elements = x["u"].numel() * STATE
    result: dict = {"level": args.level, "what": args.what, "elements": elements}
    if args.what in FLOOR_BLOCKS:
        block = FLOOR_BLOCKS[args.what]
        a, b, c, buf = (torch.randn(block) for _ in range(4))
        reps = elements // block
        exponential = torch.exp if args.what == "floor_exp" else torch.exp2

        def floor() -> None:
            for _ in range(reps):
                exponential(a, out=buf)
                buf.mul_(b).add_(c)
                buf.mul_(c).add_(b)

        base = peak_gb()
        times = timed(floor, args.repeats)
    elif args.what.startswith("eager_"):
        impl = args.what.removeprefix("eager_")
        if impl == "chunked_two_pass":  # the eager schedule narrow scans use, forced on for comparison
            from edgeens.models import scan

            impl, scan._BLOCK_MIN_LANES = "chunked", 1 << 62
        base = peak_gb()
        with torch.no_grad():
            times = timed(lambda: selective_scan(**x, delta_softplus=True, impl=impl), args.repeats)
    elif args.what == "lower_chunked":
        from edgeens.compile.executorch import lower_to_executorch

        start = time.perf_counter()
        program = lower_to_executorch(ScanLayer(x), (x["u"], x["delta"], x["B"], x["C"]))
        program.save(args.pte)
        return {
            **result,
            "lower_seconds": time.perf_counter() - start,
            "delegated_calls": program.delegated_calls,
            "portable_ops": program.portable_ops,
        }
    elif args.what == "executorch_chunked":
        import executorch.extension.pybindings.portable_lib as portable
        from executorch.runtime import Runtime

        portable._unsafe_reset_threadpool(1)
        inputs = (x["u"], x["delta"], x["B"], x["C"])
        base = peak_gb()  # before loading: the method's planned memory arena is allocated at load time
        # Keep the program alive as long as its method: the method points into it.
        program = Runtime.get().load_program(args.pte)
        method = program.load_method("forward")
        arena = peak_gb() - base  # ExecuTorch's planned memory: copies of the inputs and the output
        times = timed(lambda: method.execute(inputs), args.repeats)
        peak = peak_gb()
        with torch.no_grad():
            expected = selective_scan(**x, delta_softplus=True, impl="reference" if args.level == 4 else "chunked")
        result["max_abs_error"] = (method.execute(inputs)[0] - expected).abs().max().item()
        return {
            **result,
            "seconds": statistics.median(times),
            "min_seconds": min(times),
            "repeats": len(times),
            "peak_extra_gb": max(0.0, peak - base),
            "arena_gb": max(0.0, arena),
            "threads": portable._threadpool_get_thread_count(),
        }
    else:
        raise SystemExit(f"unknown measurement {args.what}")
    return {
        **result,
        "seconds": statistics.median(times),
        "min_seconds": min(times),
        "repeats": len(times),
        "peak_extra_gb": max(0.0, peak_gb() - base),
        "threads": torch.get_num_threads(),
    }


def ScanLayer(x: dict):  # noqa: N802 (a factory that reads like the module it builds)
    import torch

    from edgeens.models.scan import selective_scan

    class Layer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(x["A"].clone())
            self.D = torch.nn.Parameter(x["D"].clone())
            self.delta_bias = torch.nn.Parameter(x["delta_bias"].clone())

        def forward(self, u, delta, B, C):
            return selective_scan(u, delta, self.A, B, C, self.D, delta_bias=self.delta_bias, delta_softplus=True)

    return Layer().eval()


def run_child(what: str, level: int, repeats: int, pte: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--level", str(level), "--repeats", str(repeats), "--pte", pte]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return {"level": level, "what": what, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], help="measurements to skip, e.g. eager_reference")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pte", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.what = args.child
        print(json.dumps(child(args)))
        return

    import torch

    print(
        f"# selective scan benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"1 thread (torch intra-op and ExecuTorch thread pool), median of {args.repeats} after one warm-up"
    )
    rows = []
    for level in args.levels:
        L, di = LEVELS[level]
        print(
            f"\n## level {level}: L={L}, {DIRECTIONS}x{di} channels, state {STATE} "
            f"({L * DIRECTIONS * di * STATE / 1e6:.0f}M (channel, position, state) elements)"
        )
        results = {what: run_child(what, level, args.repeats) for what in FLOOR_BLOCKS}
        for impl in ("reference", "chunked", "chunked_two_pass"):
            if f"eager_{impl}" not in args.skip:
                results[f"eager_{impl}"] = run_child(f"eager_{impl}", level, args.repeats)
        if "executorch_chunked" not in args.skip:
            with tempfile.TemporaryDirectory() as tmp:
                pte = str(Path(tmp) / "scan.pte")
                lowered = run_child("lower_chunked", level, args.repeats, pte)
                results["executorch_chunked"] = {
                    **run_child("executorch_chunked", level, args.repeats, pte),
                    **{k: v for k, v in lowered.items() if k not in ("what", "level")},
                }
        floor = results["floor"].get("seconds")
        floor_l2 = results["floor_in_L2"].get("seconds")
        print(f"{'measurement':<22}{'seconds':>9}{'x floor':>9}{'x in-L2':>9}{'peak extra GiB':>16}  notes")
        for what, r in results.items():
            if "error" in r:
                print(f"{what:<22}  failed: {r['error']}")
                continue
            notes = []
            if "lower_seconds" in r:
                notes.append(
                    f"lowering {r['lower_seconds']:.0f}s, {r['delegated_calls']} XNNPACK calls, "
                    f"portable: {sum(r['portable_ops'].values())} ops"
                )
            if "arena_gb" in r:
                notes.append(f"of which {r['arena_gb'] / 1.073741824:.2f} GiB planned inputs and output")
            if "max_abs_error" in r:
                notes.append(f"max abs err vs eager {r['max_abs_error']:.1e}")
            print(
                f"{what:<22}{r['seconds']:>9.3f}{r['seconds'] / floor:>9.2f}{r['seconds'] / floor_l2:>9.2f}"
                f"{r['peak_extra_gb'] / 1.073741824:>16.2f}  {'; '.join(notes)}"
            )
            rows.append(r)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
