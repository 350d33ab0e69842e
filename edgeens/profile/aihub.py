"""Latency tables measured on Qualcomm AI Hub phones: one compile job and one profile job per stage program.

Every compile job is submitted first (all at once: the Hub runs them in parallel), then each compiled program gets
a profile job as soon as its compile finishes. Job ids go to `aihub.json` in the programs folder the moment the
Hub returns them, so a re-run after an interruption collects the same jobs instead of paying for new ones. A job
that fails or times out is recorded with its reason and the others are still collected; the table is written only
when every program has a measurement (re-running resubmits just the failed ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeens.compile.aihub import (
    AIHubError,
    JobLedger,
    call,
    connect,
    device_label,
    resolve_device,
    submit_once,
    wait_for,
)
from edgeens.compile.artifact import now, tool_versions, write_json
from edgeens.compile.stages import program_module, stage_programs
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace, families_to_dict
from edgeens.profile.table import Latency, LatencyTable, ProfileError

PROFILE_OPTIONS = "--max_profiler_iterations 100"


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
    teacher: Restormer,
    height: int,
    width: int,
    programs_dir: str | Path,
    device_name: str,
    runtime: str = "tflite",
    surrogates: Mapping[tuple[str, str], nn.Module] | None = None,
    space_name: str | None = None,
    command: str = "",
    timeout_s: float = 3600.0,
    poll_s: float = 10.0,
    progress: Callable[[str], None] | None = None,
    space: SearchSpace | None = None,
) -> LatencyTable:
    """A latency table of `space` (default: the pool's, else the teacher's MambaIR-only space) on an AI Hub
    device (see the module docstring)."""
    space = space or getattr(surrogates, "space", None) or SearchSpace(teacher.config)
    hub = connect()
    device = resolve_device(hub, device_name)
    label = device_label(device)
    folder = Path(programs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ledger = JobLedger(folder)
    programs = stage_programs(space)
    say = progress or (lambda _: None)

    compile_jobs = {}
    for program in programs:  # all compile jobs first: the Hub runs them side by side
        key = f"compile--{label}--{runtime}--{height}x{width}--{program.key}"

        def submit(program=program) -> Any:
            module, example = program_module(teacher, space, program, height, width, surrogates)
            with torch.no_grad():
                exported = torch.export.export(module, (example,))
            return hub.submit_compile_job(
                model=exported,
                device=device,
                name=f"edgeens {program.key} {height}x{width}",
                input_specs={"image": (tuple(example.shape), "float32")},
                options=f"--target_runtime {runtime}",
            )

        say(f"compile job for {program.key}")
        compile_jobs[program.key] = (key, submit_once(hub, ledger, key, f"submit a compile job for {label}", submit))

    results: dict[str, Latency] = {}
    failures: dict[str, str] = {}
    layers: dict[str, Any] = {}
    for program in programs:
        key, job = compile_jobs[program.key]
        try:
            say(f"waiting for the compile of {program.key}")
            wait_for(hub, ledger, key, job, timeout_s, poll_s)
            profile_key = key.replace("compile--", "profile--", 1)
            target = call(hub, f"get the compiled model of job {job.job_id}", job.get_target_model)
            profile_job = submit_once(
                hub,
                ledger,
                profile_key,
                f"submit a profile job for {label}",
                lambda target=target, name=f"edgeens {program.key}": hub.submit_inference_job(
                    model=target, device=device, name=name, options=PROFILE_OPTIONS, profile=True
                ),
            )
            say(f"waiting for the profile of {program.key}")
            wait_for(hub, ledger, profile_key, profile_job, timeout_s, poll_s)
            profile = call(hub, f"download the profile of job {profile_job.job_id}", profile_job.download_profile)
            results[program.key] = hub_latency(profile)
            layers[program.key] = {
                "job_id": profile_job.job_id,
                "execution_detail": profile.get("execution_detail", []),
            }
        except (AIHubError, ProfileError) as err:
            failures[program.key] = str(err)
    write_json(
        folder / f"aihub-profile--{label}--{runtime}--{height}x{width}.json",
        {
            "device": label,
            "runtime": runtime,
            "measured": {k: v.__dict__ for k, v in results.items()},
            "failures": failures,
            "layers": layers,
            "date": now(),
        },
    )
    if failures:
        listed = "; ".join(f"{k}: {v.split('; ')[0]}" for k, v in failures.items())
        raise ProfileError(
            f"{len(failures)} of {len(programs)} AI Hub jobs did not produce a latency ({listed}). The other "
            f"{len(results)} are recorded in {folder}; run the same command again to resubmit only the failed ones."
        )
    stages: dict[str, dict[str, Latency]] = {}
    for program in programs:
        if program.stage is not None:
            stages.setdefault(program.stage.name, {})[program.choice] = results[program.key]
    chipset = next((a for a in _attributes(device) if a.startswith("chipset:")), None)
    return LatencyTable(
        device=label,
        chipset=chipset.removeprefix("chipset:") if chipset else None,
        runtime=f"aihub-{runtime}",
        height=height,
        width=width,
        teacher=teacher.config.to_dict(),
        fixed=results["fixed"],
        stages=stages,
        versions=tool_versions(),
        threads=0,  # the phone's runtime decides
        warmup=0,
        repeats=f"AI Hub profile job ({PROFILE_OPTIONS})",
        date=now(),
        command=command,
        space_name=space_name,
        families=families_to_dict(space.families),
    )


def _attributes(device: Any) -> list[str]:
    attributes = getattr(device, "attributes", []) or []
    return [attributes] if isinstance(attributes, str) else list(attributes)
