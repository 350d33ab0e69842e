"""Latency on this machine: the one measurement loop, and the ExecuTorch (XNNPACK) and onnxruntime runners it times.

Protocol (spec/search.md section 5): warm up by count and by time, then repeat until the median is stable (it moves
by less than `stable_within` when the last fifth of the samples is added) or a sample/time budget runs out. The
programs of a table are measured in shuffled order over several rounds, so slow drift (thermal, other load) is
spread over all of them instead of lining up with one block type.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edgeens.compile.quantize import Quantization
from edgeens.files import write_json
from edgeens.profile.request import ProfileRequest, TimingPolicy
from edgeens.profile.table import Latency, LatencyTable
from edgeens.workers import set_threads

RUNTIMES = ("executorch", "onnxruntime")


def time_runs(run: Callable[[], Any], policy: TimingPolicy, warm: bool = True) -> list[float]:
    """Milliseconds of repeated calls of `run`, after warm-up (skipped with `warm=False`). Programs that run for
    seconds (paper-size MambaIR stacks) get one warm-up run and `min_samples` timed runs instead of the counts."""
    if warm:
        start = time.perf_counter()
        done = 0
        while done < policy.warmup_runs or time.perf_counter() - start < policy.warmup_seconds:
            run()
            done += 1
            if time.perf_counter() - start > policy.warmup_max_seconds:
                break
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < policy.max_repeats:
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= max(policy.min_repeats, 5):  # the stability check needs a few samples to compare
            earlier = float(np.median(samples[: len(samples) * 4 // 5]))
            if abs(float(np.median(samples)) - earlier) <= policy.stable_within * earlier:
                break
        if time.perf_counter() - start > policy.max_seconds and len(samples) >= policy.min_samples:
            break
    return samples


def executorch_runner(pte: str | Path | bytes, inputs: tuple[Tensor, ...]) -> Callable[[], Any]:
    """A zero-argument call that executes a .pte's forward once (program and method loaded once, kept alive)."""
    from executorch.runtime import Runtime

    from edgeens.compile.executorch import load_forward, read_program

    program = Runtime.get().load_program(pte if isinstance(pte, bytes) else read_program(pte))
    method = load_forward(program)

    def run() -> Any:
        return method.execute(inputs), program  # the program must outlive its method

    return run


def onnxruntime_runner(onnx_path: str | Path, inputs: tuple[Tensor, ...], threads: int) -> Callable[[], Any]:
    from edgeens.compile.onnx import onnx_session

    session = onnx_session(onnx_path, threads)
    feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    return lambda: session.run(None, feed)


def measure_programs(
    runners: dict[str, Callable[[], Callable[[], Any]]],
    policy: TimingPolicy,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    checkpoint: str | Path | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Samples (ms) per program key. `runners` maps a key to a factory, so that each program is loaded just before
    its turn and released after it (a paper-size table would not fit in memory all at once).

    With `checkpoint`, the samples are saved to that JSON file after every program, and a later call with the same
    programs, policy, seed and `context` resumes after the last program measured (a paper-size table takes an
    hour). The file is removed once every program is measured."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {key: [] for key in runners}
    identity = {"keys": sorted(runners), "policy": policy.to_dict(), "seed": seed, "context": context or {}}
    done: set[tuple[int, str]] = set()
    if checkpoint is not None and Path(checkpoint).is_file():
        try:
            saved = json.loads(Path(checkpoint).read_text())
        except (OSError, ValueError):
            saved = {}  # a checkpoint cut off mid-write: start over rather than trust it
        if saved.get("identity") == identity:
            samples = {key: [float(v) for v in values] for key, values in saved["samples"].items()}
            done = {(int(r), str(k)) for r, k in saved["done"]}
    per_round = TimingPolicy(
        **{
            **policy.to_dict(),
            "max_repeats": max(1, policy.max_repeats // policy.rounds),
            "min_repeats": max(1, policy.min_repeats // policy.rounds),
            "max_seconds": policy.max_seconds / policy.rounds,
            "min_samples": -(-policy.min_samples // policy.rounds),
        }
    )
    for round_index in range(policy.rounds):
        order = list(runners)
        rng.shuffle(order)
        for key in order:
            if (round_index, key) in done:
                continue
            if progress:
                progress(f"round {round_index + 1}/{policy.rounds}: {key} ({len(done)}/{len(runners) * policy.rounds})")
            run = runners[key]()
            samples[key] += time_runs(run, per_round)
            del run
            done.add((round_index, key))
            if checkpoint is not None:
                state = {"identity": identity, "done": sorted(done), "samples": samples}
                write_json(checkpoint, state, indent=None)  # an interruption leaves the previous checkpoint whole
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return samples


def host_description() -> dict[str, Any]:
    """What this machine is, for the table's metadata."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform()}


def profile_host(
    request: ProfileRequest, architectures: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> LatencyTable:
    """A latency table of `request.space` on this machine: builds the stage programs that are missing (see
    edgeens.compile.stages; `request.jobs` at a time), then times every one in `request.runtime`.

    With `architectures` (ExecuTorch only), each is also linked whole from the stage programs (edgeens.compile.link)
    and timed in the same shuffled rounds as the stage programs, into `end_to_end`: slow drift of the machine
    (an hour apart, this VM ran 1.1-1.4x slower) then falls on the prediction and the measurement alike, so the
    validation measures additivity, not the drift.

    With a `request.quantization` other than fp32, the stage programs and the table are in its precision
    (edgeens.compile.stages calibrates each stage on the teacher's features there)."""
    from edgeens.compile.artifact import now, tool_versions
    from edgeens.compile.stages import StageProgramsRequest, build_stage_programs, program_field, stage_programs
    from edgeens.models.space import families_to_dict

    teacher, space, runtime, threads, quantization = (
        request.teacher,
        request.space,
        request.runtime,
        request.threads,
        request.quantization,
    )
    height, width = request.size
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown host runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if architectures and runtime != "executorch":
        raise ValueError(f"linked architectures run in ExecuTorch; this table's runtime is {runtime}")
    if architectures and quantization.quantized:
        raise ValueError("linked architectures join float glue programs: validate a quantized table with lowered ones")
    target = "onnx" if runtime == "onnxruntime" else "executorch"
    manifest = build_stage_programs(
        StageProgramsRequest(
            teacher, space, request.size, request.programs, request.surrogates, (target,), request.jobs, quantization
        ),
        show_progress=progress is not None,
    )
    set_threads(threads)
    folder = Path(request.programs)
    runners: dict[str, Callable[[], Callable[[], Any]]] = {}
    wanted = {program.key for program in stage_programs(space)}  # the folder may hold other families' programs too
    programs = {key: entry for key, entry in manifest["programs"].items() if key in wanted}
    for key, entry in programs.items():
        example = (torch.randn(entry["input_shape"], generator=torch.Generator().manual_seed(0)),)
        file = folder / entry[program_field(target, quantization)]
        if runtime == "executorch":
            runners[key] = lambda path=file, x=example: executorch_runner(path, x)
        else:
            runners[key] = lambda path=file, x=example: onnxruntime_runner(path, x, threads)
    for architecture, program in _linked_programs(teacher, space, architectures or [], folder, progress).items():
        runners[END_TO_END + architecture] = lambda pte=program: executorch_runner(pte, _image(teacher, height, width))
    context = {
        "runtime": runtime,
        "threads": threads,
        "height": height,
        "width": width,
        "cpu": host_description()["cpu"],
        "precision": quantization.precision,
    }
    checkpoint = folder / f"timing--{runtime}{quantization.suffix}--{threads}t--{request.space_name}.partial.json"
    samples = measure_programs(runners, request.policy, progress=progress, checkpoint=checkpoint, context=context)
    stages: dict[str, dict[str, Latency]] = {}
    for key, entry in programs.items():
        if entry["stage"] is not None:
            stages.setdefault(entry["stage"], {})[entry["choice"]] = Latency.of(samples[key])
    host = host_description()
    end_to_end = {a: Latency.of(samples[END_TO_END + a]) for a in architectures or []}
    return LatencyTable(
        device="host",
        chipset=host["cpu"],
        runtime="executorch-xnnpack" if runtime == "executorch" else "onnxruntime-cpu",
        height=height,
        width=width,
        teacher=teacher.config.to_dict(),
        fixed=Latency.of(samples["fixed"]),
        stages=stages,
        versions={**tool_versions(), **host},
        threads=threads,
        warmup=request.policy.warmup_runs,
        repeats=request.policy.describe(),
        date=now(),
        command=request.command,
        space_name=request.space_name,
        families=families_to_dict(space.families),
        end_to_end=end_to_end,
        end_to_end_programs=INTERLEAVED if end_to_end else "lowered",
        precision=quantization.precision,
        quantize_scope=quantization.scope if quantization.quantized else None,
    )


END_TO_END = "end_to_end--"  # timing key prefix of a whole architecture among the stage programs
INTERLEAVED = "linked-interleaved"  # end_to_end_programs of architectures timed in the table's own rounds


def _image(teacher: Any, height: int, width: int) -> tuple[Tensor]:
    """The input every end-to-end timing runs on (fixed, so repeated timings run the same work)."""
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(1, teacher.config.inp_channels, height, width, generator=generator),)


def _linked_programs(
    teacher: Any, space: Any, architectures: list[str], folder: Path, progress: Callable[[str], None] | None
) -> dict[str, bytes]:
    """Each architecture linked from the stage programs, all before any timing (linking is seconds of CPU work
    that must not share the machine with a timed run)."""
    from edgeens.compile.link import link_architecture

    programs: dict[str, bytes] = {}
    for index, architecture in enumerate(architectures):
        if progress:
            progress(f"linking {architecture} ({index + 1}/{len(architectures)})")
        programs[architecture] = link_architecture(teacher, space.parse(architecture), folder)
    return programs


def measure_architectures(
    request: ProfileRequest,
    table: LatencyTable,
    architectures: list[str],
    table_path: str | Path,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Measure whole architectures end to end into `table.end_to_end`, saving the table after each one, so an
    interrupted validation resumes where it stopped. Each architecture is lowered as one program (cached as
    `end_to_end/<architecture>.pte` in `request.programs`), exactly as `edgeens compile` makes it. All are lowered
    (`request.jobs` at a time) before any is timed, so no timing shares the machine with a lowering.

    With `request.validate_programs` "linked", each architecture is instead linked from the table's own stage
    programs and glue programs (edgeens.compile.link: seconds, where lowering a paper-size hybrid takes up to an
    hour): one program running exactly the delegates the table timed, so the check isolates what running them
    together costs.

    A quantized table (`request.quantization`, whose images are at the table's size) is validated on architectures
    quantized whole with the same calibration, as `edgeens compile --quantize` makes them."""
    from edgeens.workers import run_in_processes

    teacher, policy, quantization = request.teacher, request.policy, request.quantization
    linked, programs_dir = request.validate_programs == "linked", request.programs
    if not table.runtime.startswith("executorch"):
        raise ValueError(f"end-to-end validation runs in ExecuTorch; this table's runtime is {table.runtime}")
    if linked and quantization.quantized:
        raise ValueError("linked architectures join float glue programs: validate a quantized table with lowered ones")
    if quantization.precision != table.precision:
        raise ValueError(f"this table is {table.precision}, its validation programs {quantization.precision}")
    programs = "linked" if linked else "lowered"
    pending = [a for a in architectures if a not in table.end_to_end]
    if not pending:
        return
    if table.end_to_end and table.end_to_end_programs != programs:
        raise ValueError(
            f"this table's end-to-end entries were measured on {table.end_to_end_programs} programs; a validation "
            f"on {programs} programs would mix the two: start from a fresh table (--remeasure) or keep the method"
        )
    table.end_to_end_programs = programs
    folder = Path(programs_dir) / "end_to_end"
    folder.mkdir(parents=True, exist_ok=True)
    example = _image(teacher, table.height, table.width)
    if linked:
        from edgeens.compile.link import link_architecture

        set_threads(table.threads)
        for index, architecture in enumerate(pending):
            if progress:
                progress(f"[{index + 1}/{len(pending)}] linking and timing {architecture}")
            program = link_architecture(teacher, table.space.parse(architecture), programs_dir)
            samples = time_runs(executorch_runner(program, example), policy)
            table.end_to_end[architecture] = Latency.of(samples)
            table.save(table_path)
        return
    families = table.space.families
    name = "{}" + quantization.suffix + ".pte"
    surrogates, unlowered = request.surrogates, [a for a in pending if not (folder / name.format(a)).is_file()]
    to_lower = [(teacher, a, surrogates, families, example, folder / name.format(a), quantization) for a in unlowered]
    lowered = run_in_processes(_lower_architecture, to_lower, request.jobs)
    for done, ((_, architecture, *_), _) in enumerate(lowered, 1):
        if progress:
            progress(f"lowered {done}/{len(to_lower)}: {architecture}")
    set_threads(table.threads)
    for index, architecture in enumerate(pending):
        if progress:
            progress(f"[{index + 1}/{len(pending)}] timing {architecture}")
        samples = time_runs(executorch_runner(folder / name.format(architecture), example), policy)
        table.end_to_end[architecture] = Latency.of(samples)
        table.save(table_path)


def _lower_architecture(
    teacher: Any,
    architecture: str,
    surrogates: Any,
    families: Any,
    example: tuple[Tensor],
    path: Path,
    quantization: Quantization,
) -> None:
    from edgeens.compile.executorch import lower_to_executorch
    from edgeens.compile.quantize import quantize_for_xnnpack
    from edgeens.models.hybrid import HybridUNet

    model: torch.nn.Module = HybridUNet.from_teacher(teacher, architecture, surrogates, families).eval()
    if quantization.quantized:
        model = quantize_for_xnnpack(model, example, quantization.calibration, quantization.scope)
    lower_to_executorch(model, example).save(path)
