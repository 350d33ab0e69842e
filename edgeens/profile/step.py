"""The profile step: what `edgeens profile` and `edgeens run` both call. It reuses a latency table that fits (in
the folders it is told to look in), or measures one on this machine or an AI Hub device, and optionally checks it
against whole architectures (`--validate`) or against a second measurement (`--repeat-check`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeens.compile.quantize import Quantization
from edgeens.errors import EdgeensError
from edgeens.files import writable_folder
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace
from edgeens.profile.host import TimingPolicy, profile_command, profile_host
from edgeens.profile.table import LatencyTable, existing_table
from edgeens.train.pool import BlockPool

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProfileRequest:
    """One latency table: the teacher and its space (with the pool's surrogates, when timed from a pool), the
    folder of its stage programs, where a measured table is written and where an existing one is looked for."""

    teacher: Restormer
    space: SearchSpace
    space_name: str  # the table's name for the space: the preset or the teacher's file name, plus the families
    size: tuple[int, int]
    programs: Path
    out: Path  # a measured table is saved here
    space_args: tuple[str, ...]  # `--preset tiny` or `--teacher PATH`: for the command recorded in the table
    surrogates: BlockPool | None = None
    pool_path: Path | None = None
    device: str = "host"
    runtime: str = "executorch"
    threads: int = 1
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    jobs: int = 1
    reuse_from: tuple[Path, ...] | None = None  # folders searched for a fitting table (default: out alone)
    also_save: tuple[Path, ...] = ()  # further folders a measured table is written to
    remeasure: bool = False
    validate: int = 0  # architectures timed whole to check the table (on this machine or the AI Hub device)
    validate_programs: str = "lowered"  # lowered whole, or linked from the stage programs
    validate_spacing: str = "linear"
    hub_runtime: str = "tflite"
    hub_poll: float = 10.0
    compute_unit: str = "cpu"  # AI Hub's --compute_unit
    max_jobs: int | None = None  # AI Hub jobs one command may submit (None: no bound)
    quantization: Quantization = field(default_factory=Quantization)  # the programs' precision (host tables)
    calibration_args: tuple[str, ...] = ()  # where a quantized table's calibration crops came from, as options

    @property
    def command(self) -> str:
        """The `edgeens profile` command that reproduces the table, from the resolved options."""
        families = "" if self.surrogates else ",".join(f.letter for f in self.space.families)
        runtime = self.runtime if self.device == "host" else self.hub_runtime
        height, width = self.size
        pool = str(self.pool_path) if self.pool_path else None
        policy = self.policy
        command = profile_command(
            self.device, list(self.space_args), families, height, width, runtime, self.threads, policy, pool
        )
        if self.quantization.quantized:  # calibrated on the task's training crops: the task is part of the table
            command += f" --quantize {self.quantization.precision} --scope {self.quantization.scope}"
            command += "".join(f" {shlex.quote(arg)}" for arg in self.calibration_args)
        return command

    def check(self) -> None:
        if self.validate_programs not in ("lowered", "linked"):
            raise EdgeensError(f"--validate-programs is lowered or linked, not {self.validate_programs!r}")
        if self.device != "host" and self.validate and self.validate_programs == "linked":
            raise EdgeensError(
                "--validate-programs linked links ExecuTorch programs on this machine: on AI Hub use lowered"
            )
        if self.quantization.quantized:
            if self.device != "host":
                raise EdgeensError(
                    "quantized latency tables are measured on this machine (--device host); for a phone, compile "
                    "the model with edgeens compile --target aihub --quantize w8a8|w8a16 and profile it whole"
                )
            if self.validate and self.validate_programs == "linked":
                raise EdgeensError(
                    "--validate-programs linked joins float glue programs: validate a quantized table with lowered"
                )
            self.quantization.check(self.runtime)


@dataclass(frozen=True)
class ProfileResult:
    table: LatencyTable
    path: Path  # where the table is (the reused file, or the one just written)
    reused: bool
    note: str = ""  # e.g. stage programs changed since the table was measured


def profile_step(
    request: ProfileRequest, progress: Progress | None = None, say: Progress | None = None
) -> ProfileResult:
    """The latency table of `request.space`: reused when one fits (unless `remeasure`), else measured.
    `progress` gets passing status lines, `say` the ones a user should keep."""
    request.check()
    writable_folder(request.out)  # before minutes of measuring, not after
    height, width = request.size
    if request.device != "host":
        from edgeens.profile.aihub import profile_on_hub

        table = profile_on_hub(
            request.teacher,
            height,
            width,
            request.programs,
            request.device,
            request.hub_runtime,
            request.surrogates,
            request.space_name,
            request.command,
            poll_s=request.hub_poll,
            progress=progress,
            space=request.space,
            compute_unit=request.compute_unit,
            max_jobs=request.max_jobs,
            say=say,
        )
        return ProfileResult(table, _save(request, table), reused=False)
    existing = None
    for place in request.reuse_from or (request.out,):
        existing = existing_table(
            place,
            request.teacher,
            height,
            width,
            request.runtime,
            request.threads,
            request.space_name,
            request.space,
            say,
            request.quantization.precision,
        )
        if existing is not None:
            if not request.remeasure:
                return ProfileResult(existing, place / existing.filename(), True, existing.stale_programs() or "")
            break
    architectures = None
    # Linked validation architectures are timed in the table's own shuffled rounds, so that drift of the machine
    # between two sessions cannot pass for a prediction error; choosing them needs a table first.
    if request.validate and request.validate_programs == "linked" and request.runtime == "executorch":
        from edgeens.profile.correlate import spread_architectures

        if existing is None:
            if say:
                say("measuring the table once to choose the validation architectures")
            existing = measure_table(request, progress)
            _save(request, existing)
        architectures = spread_architectures(existing, request.validate, spacing=request.validate_spacing)
    table = measure_table(request, progress, architectures)
    return ProfileResult(table, _save(request, table), reused=False)


def measure_table(
    request: ProfileRequest, progress: Progress | None = None, architectures: list[str] | None = None
) -> LatencyTable:
    """Measure the table on this machine now (building the stage programs that are missing)."""
    height, width = request.size
    return profile_host(
        request.teacher,
        height,
        width,
        request.programs,
        request.runtime,
        request.threads,
        request.policy,
        request.space_name,
        request.command,
        request.surrogates,
        progress=progress,
        jobs=request.jobs,
        space=request.space,
        architectures=architectures,
        quantization=request.quantization,
    )


def _save(request: ProfileRequest, table: LatencyTable) -> Path:
    path = table.save(request.out)
    for folder in request.also_save:
        table.save(folder)
    return path


def validate_table(
    request: ProfileRequest,
    result: ProfileResult,
    reports: Path,
    progress: Progress | None = None,
    say: Progress | None = None,
) -> dict[str, Any]:
    """Time `request.validate` whole architectures spread over the table's range and compare them with its
    predictions; writes `validation--<table>.json` and `.png` into `reports` and returns the report."""
    from edgeens.profile.correlate import spread_architectures
    from edgeens.profile.host import INTERLEAVED, measure_architectures

    table, count = result.table, request.validate
    if request.device != "host":
        from edgeens.profile.aihub import validate_on_hub

        validate_on_hub(
            table,
            spread_architectures(table, count, spacing=request.validate_spacing),
            request.teacher,
            request.programs,
            result.path,
            request.device,
            request.hub_runtime,
            request.surrogates,
            request.compute_unit,
            request.max_jobs,
            poll_s=request.hub_poll,
            progress=progress,
            say=say,
        )
        return _write_validation(table, result.path, reports)
    if table.end_to_end_programs == INTERLEAVED:  # its architectures were chosen and timed with the table
        if len(table.end_to_end) != count:
            raise EdgeensError(
                f"this table's {len(table.end_to_end)} validation architectures were timed in its own rounds; "
                f"add --remeasure to validate {count}"
            )
        architectures = list(table.end_to_end)
    else:
        architectures = spread_architectures(table, count, spacing=request.validate_spacing)
    measure_architectures(
        table,
        architectures,
        request.teacher,
        request.programs,
        result.path,
        request.policy,
        request.surrogates,
        progress=progress,
        jobs=request.jobs,
        linked=request.validate_programs == "linked",
        quantization=request.quantization,
    )
    return _write_validation(table, result.path, reports)


def _write_validation(table: LatencyTable, path: Path, reports: Path) -> dict[str, Any]:
    """The correlation report of the table's end-to-end measurements, as JSON and a scatter plot."""
    from edgeens.profile.correlate import plot_validation, validation_report

    report = validation_report(table)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"validation--{path.stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_validation(table, report, str(reports / f"validation--{path.stem}.png"))
    return report


def check_repeatability(
    request: ProfileRequest, result: ProfileResult, reports: Path, progress: Progress | None = None
) -> tuple[dict[str, Any], Path]:
    """Measure the table a second time and compare entry by entry; writes `repeatability--<table>.json`."""
    from edgeens.files import write_json
    from edgeens.profile.table import compare_tables

    comparison = compare_tables(result.table, measure_table(request, progress))
    reports.mkdir(parents=True, exist_ok=True)
    target = reports / f"repeatability--{result.path.stem}.json"
    write_json(target, comparison, indent=1)
    return comparison, target
