"""The profile step: what `edgeens profile` and `edgeens run` both call. It reuses a latency table that fits (in
the folders it is told to look in), or measures one on this machine or an AI Hub device, and optionally checks it
against whole architectures (`--validate`) or against a second measurement (`--repeat-check`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeens.errors import EdgeensError
from edgeens.files import writable_folder
from edgeens.profile.host import profile_host
from edgeens.profile.request import ProfileRequest, TimingPolicy
from edgeens.profile.table import LatencyTable, existing_table

Progress = Callable[[str], None]
__all__ = ["ProfileRequest", "ProfileResult", "TimingPolicy", "profile_step", "validate_table", "check_repeatability"]


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
    if request.device != "host":
        from edgeens.profile.aihub import profile_on_hub

        table = profile_on_hub(request, progress=progress, say=say)
        return ProfileResult(table, _save(request, table), reused=False)
    existing = None
    for place in request.reuse_from or (request.out,):
        existing = existing_table(place, request.wanted_table(), request.space, say)
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
    return profile_host(request, architectures, progress)


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

        architectures = spread_architectures(table, count, spacing=request.validate_spacing)
        validate_on_hub(request, table, architectures, result.path, progress=progress, say=say)
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
    measure_architectures(request, table, architectures, result.path, progress)
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
