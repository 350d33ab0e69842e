"""Training speed on a device: teacher training and one surrogate's distillation, tiny and paper presets.

    python benchmarks/train.py [--device auto|cpu|cuda[:N]] [--precision auto|fp32|bf16] [--presets tiny,paper]
                               [--batch 8] [--patch 64] [--seconds 30] [--json FILE]

Each case runs the step its training runs (teacher: AdamW on the L1 of a Restormer's restoration, gradient clipping;
distillation: Adam on the L1 between a surrogate's output and the teacher stage's, the MambaIR family's full stack
at the first, full-resolution stage) on random batches already on the device, after two warm-up iterations, until
`--seconds` or `--iterations` is reached, synchronising the device around the timed span. It prints iterations and
images per second and the peak memory: the GPU's allocator peak on a GPU, the process's peak resident memory on a
CPU (process-wide: the largest case so far). The thread count is recorded with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from edgeens.devices import autocast, resolve_device, resolve_precision
from edgeens.models import Restormer
from edgeens.models.space import PRESETS, SearchSpace, parse_families
from edgeens.models.surrogates import build_surrogate


def l1_step(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    target: torch.Tensor,
    precision: str,
    grad_clip: float | None = None,
) -> Callable[[], None]:
    """One optimisation step on the L1 between `module(inputs)` and `target`, forward in `precision`: what teacher
    training (with Restormer's gradient clipping) and distillation (without) repeat."""

    def step() -> None:
        with autocast(inputs.device, precision):
            output = module(inputs)
        loss = F.l1_loss(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
        optimizer.step()

    return step


def teacher_step(preset: str, batch: int, patch: int, device: torch.device, precision: str) -> Callable[[], None]:
    torch.manual_seed(0)
    model = Restormer(**PRESETS[preset].to_dict()).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    lq, gt = torch.rand(2, batch, 3, patch, patch, device=device)
    return l1_step(model, optimizer, lq, gt, precision, grad_clip=0.01)


def distill_step(preset: str, batch: int, patch: int, device: torch.device, precision: str) -> Callable[[], None]:
    torch.manual_seed(0)
    space = SearchSpace(PRESETS[preset], parse_families("M"))
    stage = space.stages[0]  # encoder1: full resolution, the costliest pixels
    surrogate = build_surrogate(stage, f"M{stage.depth}", space.family("M")).to(device).train()
    optimizer = torch.optim.Adam(surrogate.parameters(), lr=5e-4)
    side = patch // 2 ** (stage.level - 1)
    features, target = torch.rand(2, batch, stage.width, side, side, device=device)
    return l1_step(surrogate, optimizer, features, target, precision)


def measure(step: Callable[[], None], device: torch.device, seconds: float, iterations: int) -> dict[str, float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up: allocator, kernels' autotuning, lazy initialisation
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while done < iterations and (time.perf_counter() - start < seconds or done < 3):
        step()
        done += 1
    sync()
    wall = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"iterations": done, "seconds": wall, "cpu_seconds": time.process_time() - cpu_start, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0, help="Timed seconds per case (at least 3 iterations).")
    parser.add_argument("--iterations", type=int, default=200, help="At most this many timed iterations per case.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="Also write the results here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({name}), {precision}, {args.threads} thread(s), batch {args.batch} of {args.patch}px")
    rows = []
    for preset in args.presets.split(","):
        for task, build in (("teacher", teacher_step), ("distill M (encoder1)", distill_step)):
            figures = measure(
                build(preset, args.batch, args.patch, device, precision), device, args.seconds, args.iterations
            )
            per_second = figures["iterations"] / figures["seconds"]
            row = {
                "preset": preset,
                "task": task,
                "iterations_per_s": per_second,
                "images_per_s": per_second * args.batch,
            }
            rows.append(row | figures)
            print(
                f"{preset:6} {task:22} {per_second:8.2f} it/s {row['images_per_s']:8.1f} img/s "
                f"peak {figures['peak_gib']:.2f} GiB ({figures['iterations']} iterations, {figures['seconds']:.1f} s, "
                f"CPU {figures['cpu_seconds']:.1f} s)",
                flush=True,
            )
    if args.json:
        record = {
            "device": str(device),
            "device_name": name,
            "precision": precision,
            "threads": args.threads,
            "batch": args.batch,
            "patch": args.patch,
            "torch": torch.__version__,
            "rows": rows,
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=1)


if __name__ == "__main__":
    main()
