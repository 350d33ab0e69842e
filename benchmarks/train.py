"""Training speed: one optimisation step of each model the runs train, phase by phase, on a device.

    python benchmarks/train.py [--cases teacher,mambair-only,...] [--preset tiny] [--batch 8] [--patch 32]
                               [--seconds 20] [--threads 1] [--device auto|cpu|cuda[:N]] [--precision auto|fp32|bf16]
                               [--compare] [--options channels_last,foreach,fused,compile] [--json FILE]
    python benchmarks/train.py --markdown FILE   # the table of an earlier --json result

Cases, each on random batches already on the device and in a process of its own (so that its peak resident memory
is its own):
- teacher: the tiny Restormer with the teacher / fine-tuning recipe (AdamW, gradient clipping), as
  edgeens.train.loop trains it;
- mambair-only, fifty-fifty: the paper's baselines (edgeens.compare.compare_rows' architectures), MambaIR (M)
  stacks in every stage / every other stage;
- ens-tiny-2x: the ENS hybrid of reports/tiny-2x, R-G1-R-G1-G1-G1-G1-G1;
- distill-M, distill-L, distill-S, distill-G: one distillation step (Adam, L1 to the teacher stage's output) of each
  family's full stack at encoder1, the full-resolution stage.

Each step is split into forward (with the loss), backward and optimizer (clipping included), timed separately after
two warm-up steps until `--seconds` (at least 3 steps). `--compare` times every case that scans (M, L, S) with the
scan's old backward (`training_backward("recompute")`, activation checkpointing over the unrolled forward) beside the
explicit one in the same run. `--options` times variants of every case beside the plain step: channels_last memory
format, AdamW's foreach or fused implementation, torch.compile of the model (inductor). The thread count is recorded
with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgeens.devices import autocast, resolve_device, resolve_precision
from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.models.scan import training_backward
from edgeens.models.space import PRESETS, SearchSpace, parse_families
from edgeens.models.surrogates import build_surrogate
from edgeens.train.loop import TrainingRecipe

CASES = (
    "teacher",
    "mambair-only",
    "fifty-fifty",
    "ens-tiny-2x",
    "distill-M",
    "distill-L",
    "distill-S",
    "distill-G",
)
SCANNING = ("M", "L", "S")  # the families whose blocks run selective scans
OPTIONS = ("channels_last", "foreach", "fused", "compile")
ENS_TINY_2X = "R-G1-R-G1-G1-G1-G1-G1"


@dataclass(frozen=True)
class Variant:
    """One way to run a case's step: the scan's backward and the options applied."""

    backward: str = "explicit"
    option: str = ""  # one of OPTIONS, or "" for the plain step

    @property
    def label(self) -> str:
        return "+".join(part for part in (self.backward, self.option) if part)


def architecture(case: str, space: SearchSpace) -> str:
    """The hybrid architecture a case trains (as compare_rows builds the paper's baselines)."""
    if case == "mambair-only":
        return "-".join(space.family_only("M"))
    if case == "fifty-fifty":
        return "-".join(s.choices[1] if i % 2 == 0 else "R" for i, s in enumerate(space.stages))
    return ENS_TINY_2X


def scans(case: str, space: SearchSpace) -> bool:
    """Whether the case's trained modules run selective scans (so the scan's backward matters)."""
    if case.startswith("distill-"):
        return case[-1] in SCANNING
    if case == "teacher":
        return False
    return any(token[0] in SCANNING for token in space.parse(architecture(case, space)))


def build(
    case: str, preset: str, batch: int, patch: int, device: torch.device, option: str
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor, float | None]:
    """The case's module, optimizer, a fixed random batch and its target, and the gradient clip (None: none)."""
    torch.manual_seed(0)
    space = SearchSpace(PRESETS[preset], parse_families("M,L,S,G"))
    recipe = TrainingRecipe()
    memory = torch.channels_last if option == "channels_last" else torch.contiguous_format
    implementation = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(option, {"foreach": False})
    if case.startswith("distill-"):
        stage = space.stages[0]  # encoder1: full resolution, the costliest pixels
        family = space.family(case[-1])
        token = f"{family.letter}{max(family.depths(stage.depth))}"  # the family's full stack
        module = build_surrogate(stage, token, family)
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam
        settings: dict = {"lr": 5e-4}
        channels, side, clip = stage.width, patch // 2 ** (stage.level - 1), None
    else:
        teacher = Restormer(**PRESETS[preset].to_dict())
        module = (
            teacher
            if case == "teacher"
            else HybridUNet.from_teacher(teacher, architecture(case, space), families=space.families)
        )
        optimizer_class = torch.optim.AdamW
        settings = {"lr": recipe.lr, "weight_decay": recipe.weight_decay, "betas": recipe.betas}
        channels, side, clip = 3, patch, recipe.grad_clip
    module = module.to(device, memory_format=memory).train()
    optimizer = optimizer_class(module.parameters(), **settings, **implementation)
    inputs, target = (
        torch.rand(batch, channels, side, side, device=device).contiguous(memory_format=memory) for _ in range(2)
    )
    return module, optimizer, inputs, target, clip


def measure(args: argparse.Namespace, case: str, variant: Variant) -> dict:
    """Time the case's step by phase; runs in a process of its own."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    module, optimizer, inputs, target, clip = build(case, args.preset, args.batch, args.patch, device, variant.option)
    forward_module: Callable[[torch.Tensor], torch.Tensor] = (
        torch.compile(module) if variant.option == "compile" else module
    )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(timed: bool) -> None:
        clock = [time.perf_counter()]

        def mark(phase: str) -> None:
            sync()
            now = time.perf_counter()
            if timed:
                phases[phase] += now - clock[0]
            clock[0] = now

        with autocast(device, precision):
            output = forward_module(inputs)
        loss = F.l1_loss(output.float(), target)
        mark("forward")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()
        mark("optimizer")

    with training_backward(variant.backward):
        for _ in range(2):  # warm-up: allocator, lazy initialisation, compilation
            step(timed=False)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        done, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < args.seconds or done < 3:
            step(timed=True)
            done += 1
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = usage.ru_maxrss / 2**20
    per_step = {phase: seconds / done for phase, seconds in phases.items()}
    return {
        "case": case,
        "variant": variant.label,
        "steps": done,
        "step_s": wall / done,
        **{f"{phase}_s": seconds for phase, seconds in per_step.items()},
        "backward_per_forward": per_step["backward"] / per_step["forward"],
        "cpu_s": time.process_time() - cpu_start,
        "system_s": usage.ru_stime,
        "peak_gib": peak,
        "parameters": sum(p.numel() for p in module.parameters()),
    }


def measure_or_fail(args: argparse.Namespace, case: str, variant: Variant) -> dict:
    """`measure`, or a row saying why the variant cannot run (torch.compile of the scans, say)."""
    try:
        return measure(args, case, variant)
    except Exception as error:  # noqa: BLE001 - a variant that fails is a result, not the end of the benchmark
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        reason = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # "raised:" says nothing alone
        return {"case": case, "variant": variant.label, "error": f"{type(error).__name__}: {reason}"[:300]}


def _in_process(args: argparse.Namespace, case: str, variant: Variant) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure_or_fail, (args, case, variant))


def variants(case: str, space: SearchSpace, compare: bool, options: list[str]) -> list[Variant]:
    """The plain step, the old scan backward where asked and the case scans, then each option."""
    chosen = [Variant()]
    if compare and scans(case, space):
        chosen.append(Variant(backward="recompute"))
    chosen += [Variant(option=option) for option in options]
    return chosen


def markdown(record: dict) -> str:
    """The results as the table docs/measurements.md quotes."""
    lines = [
        "| case | variant | step s | forward s | backward s | optimizer s | backward / forward | step / teacher's "
        "| peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        if "error" in row:
            lines.append(f"| {row['case']} | {row['variant']} | fails: {row['error'][:80]} | | | | | | |")
            continue
        ratio = f"{row['step_per_teacher']:.2f}x" if row.get("step_per_teacher") else "1.00x"
        lines.append(
            f"| {row['case']} | {row['variant']} | {row['step_s']:.3f} | {row['forward_s']:.3f} | "
            f"{row['backward_s']:.3f} | {row['optimizer_s']:.3f} | {row['backward_per_forward']:.2f} | {ratio} | "
            f"{row['peak_gib']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Print the table of an earlier --json result and stop.")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="Timed seconds per case (at least 3 steps).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compare", action="store_true", help="Also time the scan's old, recomputing backward.")
    parser.add_argument("--options", default="", help=f"Comma-separated, of {', '.join(OPTIONS)}.")
    parser.add_argument("--json", help="Also write the results here.")
    args = parser.parse_args()
    if args.markdown:
        with open(args.markdown) as file:
            print(markdown(json.load(file)))
        return
    cases = [c for c in args.cases.split(",") if c]
    options = [o for o in args.options.split(",") if o]
    unknown = sorted(set(cases) - set(CASES)) + sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown case or option {', '.join(unknown)}: cases {', '.join(CASES)}; options {OPTIONS}")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device {device} ({name}), {precision}, {args.threads} thread(s), batch {args.batch} of {args.patch}px, "
        f"preset {args.preset}, torch {torch.__version__}",
        flush=True,
    )
    space = SearchSpace(PRESETS[args.preset], parse_families("M,L,S,G"))
    rows: list[dict] = []
    print(
        f"{'case':14} {'variant':20} {'step s':>8} {'fwd s':>7} {'bwd s':>7} {'opt s':>7} {'bwd/fwd':>7} "
        f"{'x teacher':>9} {'peak GiB':>8}"
    )
    for case in cases:
        for variant in variants(case, space, args.compare, options):
            row = _in_process(args, case, variant)
            if "error" in row:
                rows.append(row)
                print(f"{case:14} {variant.label:20} failed: {row['error']}", flush=True)
                continue
            plain_teacher = case == "teacher" and variant == Variant()
            teacher = (
                row
                if plain_teacher
                else next((r for r in rows if r["variant"] == "explicit" and r["case"] == "teacher"), None)
            )
            row["step_per_teacher"] = row["step_s"] / teacher["step_s"] if teacher else None
            rows.append(row)
            ratio = f"{row['step_per_teacher']:.2f}" if teacher else ""
            print(
                f"{case:14} {variant.label:20} {row['step_s']:8.3f} {row['forward_s']:7.3f} {row['backward_s']:7.3f} "
                f"{row['optimizer_s']:7.3f} {row['backward_per_forward']:7.2f} {ratio:>9} {row['peak_gib']:8.2f}",
                flush=True,
            )
    if args.json:
        record = {
            "command": "python benchmarks/train.py "
            + " ".join(
                f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                for k, v in vars(args).items()
                if k not in ("json", "markdown") and v not in (False, "", None)
            ),
            "device": str(device),
            "device_name": name,
            "precision": precision,
            "threads": args.threads,
            "batch": args.batch,
            "patch": args.patch,
            "preset": args.preset,
            "torch": torch.__version__,
            "rows": rows,
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=1)


if __name__ == "__main__":
    main()
