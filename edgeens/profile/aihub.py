"""Latency tables measured on Qualcomm AI Hub phones: one compile job and one profile job per stage program, on
the compute unit asked for (`--compute_unit`: cpu, gpu or npu).

Every compile job is submitted first (all at once: the Hub runs them in parallel), then each compiled program gets
a profile job as soon as its compile finishes. Job ids go to `aihub.json` in the programs folder the moment the
Hub returns them, so a re-run after an interruption collects the same jobs instead of paying for new ones. A job
that fails or times out is recorded with its reason and the others are still collected; the table is written only
when every program has a measurement (re-running resubmits just the failed ones). Before anything is submitted the
number of new jobs is said, and refused above `max_jobs`. `validate_on_hub` times whole architectures the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeens.compile.aihub import (
    AIHubError,
    HubSession,
    JobLedger,
    call,
    compile_options,
    open_session,
    submit_once,
    wait_for,
)
from edgeens.compile.artifact import now, tool_versions, write_json
from edgeens.compile.stages import program_module, stage_programs
from edgeens.models.space import families_to_dict
from edgeens.profile.request import ProfileRequest
from edgeens.profile.table import Latency, LatencyTable, ProfileError

PROFILE_ITERATIONS = 100


def placement(execution_detail: list[dict[str, Any]], compute_unit: str) -> dict[str, Any]:
    """Which unit ran the profile's layers: counts per unit and the share that fell back to the CPU when another
    unit was asked for (0 when the CPU was asked for)."""
    units: dict[str, int] = {}
    for layer in execution_detail:
        unit = str(layer.get("compute_unit", "UNSPECIFIED"))
        units[unit] = units.get(unit, 0) + 1
    total = sum(units.values())
    fell_back = 0 if compute_unit == "cpu" else units.get("CPU", 0)
    return {"layers": total, "units": units, "cpu_fallback_share": fell_back / total if total else 0.0}


def count_new_jobs(ledger: JobLedger, keys: list[str]) -> int:
    """Jobs a run would pay for: a compile and a profile for every key whose profile has not succeeded (a
    recorded, unfailed compile is collected, not resubmitted)."""
    count = 0
    for key in keys:
        profile = ledger.get(key.replace("compile--", "profile--", 1))
        if profile and profile.get("state") == "SUCCESS":
            continue
        compile_entry = ledger.get(key)
        count += 1 + (0 if compile_entry and compile_entry.get("state") != "FAILED" else 1)
    return count


def announce_jobs(ledger: JobLedger, keys: list[str], max_jobs: int | None, say: Callable[[str], None], what: str):
    new = count_new_jobs(ledger, keys)
    if max_jobs is not None and new > max_jobs:
        raise AIHubError(
            f"{what} would submit {new} AI Hub jobs, more than --max-jobs {max_jobs}; raise --max-jobs to go ahead "
            "(jobs already recorded in aihub.json are collected, not counted)"
        )
    say(f"{what}: {new} new AI Hub jobs to submit ({len(keys) * 2 - new} recorded)")


def _submit_exported(
    session: HubSession, request: ProfileRequest, module: nn.Module, example: torch.Tensor, name: str
) -> Any:
    """Export `module` at `example`'s shape and submit its compile job (what every program and architecture gets)."""
    with torch.no_grad():
        exported = torch.export.export(module, (example,))
    return session.hub.submit_compile_job(
        model=exported,
        device=session.device,
        name=name,
        input_specs={"image": (tuple(example.shape), "float32")},
        options=compile_options(request.hub_runtime, request.compute_unit),
    )


def _failed_jobs_line(failures: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v.split('; ')[0]}" for k, v in failures.items())


def _profile_program(session: HubSession, request: ProfileRequest, key: str, job: Any, name: str) -> tuple[Any, Any]:
    """Wait for a compile job, then profile its target model; returns the profile job and its profile dict."""
    hub, ledger, timeout_s, poll_s = session.hub, session.ledger, request.hub_timeout, request.hub_poll
    wait_for(hub, ledger, key, job, timeout_s, poll_s)
    profile_key = key.replace("compile--", "profile--", 1)
    target = call(hub, f"get the compiled model of job {job.job_id}", job.get_target_model)
    options = f"--max_profiler_iterations {PROFILE_ITERATIONS} --compute_unit {request.compute_unit}"

    def submit() -> Any:
        return hub.submit_inference_job(model=target, device=session.device, name=name, options=options, profile=True)

    profile_job = submit_once(hub, ledger, profile_key, f"submit a profile job for {session.label}", submit)
    wait_for(hub, ledger, profile_key, profile_job, timeout_s, poll_s)
    profile = call(hub, f"download the profile of job {profile_job.job_id}", profile_job.download_profile)
    return profile_job, profile


def hub_latency(profile: Mapping[str, Any]) -> Latency:
    """A Latency from a profile dict (spec/deployment.md 1.10): our own median and percentiles of
    `all_inference_times` (microseconds), or the single `estimated_inference_time` of older profiles."""
    summary = profile.get("execution_summary") or {}
    times = summary.get("all_inference_times") or []
    if not times and summary.get("estimated_inference_time"):
        times = [summary["estimated_inference_time"]]
    if not times:
        raise ProfileError("the AI Hub profile has neither all_inference_times nor estimated_inference_time")
    return Latency.of([t / 1000 for t in times])


def profile_on_hub(
    request: ProfileRequest, progress: Callable[[str], None] | None = None, say: Callable[[str], None] | None = None
) -> LatencyTable:
    """A latency table of `request.space` on its AI Hub device and compute unit (see the module docstring)."""
    teacher, space, surrogates = request.teacher, request.space, request.surrogates
    height, width = request.size
    runtime, compute_unit = request.hub_runtime, request.compute_unit
    folder = Path(request.programs)
    session = open_session(request.device, compute_unit, folder)
    hub, label, ledger = session.hub, session.label, session.ledger
    programs = stage_programs(space)
    progress = progress or (lambda _: None)
    prefix = f"compile--{label}--{runtime}--{compute_unit}--{height}x{width}"
    keys = [f"{prefix}--{p.key}" for p in programs]
    announce_jobs(ledger, keys, request.max_jobs, say or progress, "the latency table")

    compile_jobs = {}
    for program in programs:  # all compile jobs first: the Hub runs them side by side
        key = f"{prefix}--{program.key}"

        def submit(program=program) -> Any:
            module, example = program_module(teacher, space, program, height, width, surrogates)
            name = f"edgeens {program.key} {height}x{width}"
            return _submit_exported(session, request, module, example, name)

        progress(f"compile job for {program.key}")
        compile_jobs[program.key] = (key, submit_once(hub, ledger, key, f"submit a compile job for {label}", submit))

    results: dict[str, Latency] = {}
    failures: dict[str, str] = {}
    layers: dict[str, Any] = {}
    for program in programs:
        key, job = compile_jobs[program.key]
        try:
            progress(f"waiting for the compile and profile of {program.key}")
            profile_job, profile = _profile_program(session, request, key, job, f"edgeens {program.key}")
            results[program.key] = hub_latency(profile)
            detail = profile.get("execution_detail", [])
            layers[program.key] = {
                "job_id": profile_job.job_id,
                "placement": placement(detail, compute_unit),
                "execution_detail": detail,
            }
        except (AIHubError, ProfileError) as err:
            failures[program.key] = str(err)
    write_json(
        folder / f"aihub-profile--{label}--{runtime}--{compute_unit}--{height}x{width}.json",
        {
            "device": label,
            "runtime": runtime,
            "compute_unit": compute_unit,
            "measured": {k: v.__dict__ for k, v in results.items()},
            "failures": failures,
            "layers": layers,
            "date": now(),
        },
    )
    if failures:
        listed = _failed_jobs_line(failures)
        raise ProfileError(
            f"{len(failures)} of {len(programs)} AI Hub jobs did not produce a latency ({listed}). The other "
            f"{len(results)} are recorded in {folder}; run the same command again to resubmit only the failed ones."
        )
    stages: dict[str, dict[str, Latency]] = {}
    for program in programs:
        if program.stage is not None:
            stages.setdefault(program.stage.name, {})[program.choice] = results[program.key]
    chipset = next((a for a in _attributes(session.device) if a.startswith("chipset:")), None)
    return LatencyTable(
        device=label,
        chipset=chipset.removeprefix("chipset:") if chipset else None,
        runtime=f"aihub-{runtime}-{compute_unit}",  # in the identity: a CPU table never serves an NPU search
        height=height,
        width=width,
        teacher=teacher.config.to_dict(),
        fixed=results["fixed"],
        stages=stages,
        versions=tool_versions(),
        threads=0,  # the phone's runtime decides
        warmup=0,
        repeats=f"AI Hub profile job (--max_profiler_iterations {PROFILE_ITERATIONS})",
        date=now(),
        command=request.command,
        space_name=request.space_name,
        families=families_to_dict(space.families),
        compute_unit=compute_unit,
        placement=_overall_placement([v["placement"] for v in layers.values()]),
    )


def _overall_placement(placements: list[dict[str, Any]]) -> dict[str, Any]:
    units: dict[str, int] = {}
    for entry in placements:
        for unit, count in entry["units"].items():
            units[unit] = units.get(unit, 0) + count
    total = sum(units.values())
    share = sum(p["cpu_fallback_share"] * p["layers"] for p in placements) / total if total else 0.0
    return {"layers": total, "units": units, "cpu_fallback_share": share}


def _attributes(device: Any) -> list[str]:
    attributes = getattr(device, "attributes", []) or []
    return [attributes] if isinstance(attributes, str) else list(attributes)


def validate_on_hub(
    request: ProfileRequest,
    table: LatencyTable,
    architectures: list[str],
    table_path: str | Path,
    progress: Callable[[str], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """Compile and profile each architecture whole on the AI Hub device into `table.end_to_end` (saved after
    each), as the host validation lowers and times them: all compiles first, then each profile. Job ids go to the
    programs folder's `aihub.json`, so a re-run collects instead of resubmitting."""
    from edgeens.models.hybrid import HybridUNet

    teacher, runtime, compute_unit = request.teacher, request.hub_runtime, request.compute_unit
    session = open_session(request.device, compute_unit, request.programs)
    hub, label, ledger = session.hub, session.label, session.ledger
    progress = progress or (lambda _: None)
    pending = [a for a in architectures if a not in table.end_to_end]
    prefix = f"compile--{label}--{runtime}--{compute_unit}--{table.height}x{table.width}--whole"
    announce_jobs(
        ledger,
        [f"{prefix}--{a}" for a in pending],
        request.max_jobs,
        say or progress,
        f"validating {len(pending)} architectures",
    )
    families = table.space.families
    example = torch.rand(
        1, teacher.config.inp_channels, table.height, table.width, generator=torch.Generator().manual_seed(0)
    )
    jobs = {}
    for architecture in pending:

        def submit(architecture=architecture) -> Any:
            model = HybridUNet.from_teacher(teacher, architecture, request.surrogates, families).eval()
            name = f"edgeens whole {architecture} {table.height}x{table.width}"
            return _submit_exported(session, request, model, example, name)

        progress(f"compile job for {architecture}")
        key = f"{prefix}--{architecture}"
        jobs[architecture] = (key, submit_once(hub, ledger, key, f"submit a compile job for {label}", submit))
    failures = {}
    table.end_to_end_programs = "lowered"
    for index, architecture in enumerate(pending, 1):
        key, job = jobs[architecture]
        progress(f"[{index}/{len(pending)}] waiting for the compile and profile of {architecture}")
        try:
            _, profile = _profile_program(session, request, key, job, f"edgeens whole {architecture}")
            table.end_to_end[architecture] = hub_latency(profile)
            table.save(table_path)
        except (AIHubError, ProfileError) as err:
            failures[architecture] = str(err)
    if failures:
        listed = _failed_jobs_line(failures)
        raise ProfileError(
            f"{len(failures)} of {len(pending)} validation architectures got no latency on AI Hub ({listed}); the "
            f"others are saved in {table_path}: run the same command again to resubmit only the failed ones"
        )
