"""Latency tables: per (stage, choice) latency on one device, runtime and input size, and the penalties built on them.

A table is the measured answer to "what does this block cost here": median, 10th and 90th percentile and sample
count for every (stage, choice) of a search space and for the fixed part (everything outside the stages), plus
the end-to-end latency of whole architectures when validated. It records how it was measured (device, chipset,
runtime and versions, threads, warm-up and repeats, date, the command) so that a stale table is recognisable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeens.errors import EdgeensError
from edgeens.files import format_name, upgrade_format, write_json
from edgeens.models import EXPORT_FORM_VERSION
from edgeens.models.restormer import RestormerConfig
from edgeens.models.space import (
    PAPER_FAMILIES,
    RESTORMER,
    SearchSpace,
    families_from_dict,
    families_to_dict,
    split_token,
)


def _recorded_form_and_families(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 to 2: a table names its families and the export form its programs were lowered from; a
    version-1 table without them timed the paper's MambaIR family, lowered from export form 2."""
    raw["versions"] = {"export_form": 2, **(raw.get("versions") or {})}
    raw["families"] = raw.get("families") or families_to_dict(PAPER_FAMILIES)
    return raw


UPGRADES = (_recorded_form_and_families,)
FORMAT = format_name("latency", UPGRADES)
NOISY_SPREAD = 0.10  # (p90 - p10) / median above this: the entry is flagged noisy


class ProfileError(EdgeensError):
    """A latency table that is malformed, or does not fit the space or input size it is used with."""


@dataclass(frozen=True)
class Latency:
    """Summary of repeated timings of one program, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int

    @classmethod
    def of(cls, samples_ms: list[float] | np.ndarray) -> Latency:
        values = np.asarray(samples_ms, dtype=float)
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ProfileError(f"latency samples must be positive and finite, got {values[:5].tolist()}")
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), int(values.size))

    @property
    def spread(self) -> float:
        """Relative width of the 10-90 percentile band."""
        return (self.p90_ms - self.p10_ms) / self.median_ms

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD


@dataclass
class LatencyTable:
    """Per-block latency of one search space on one device, runtime and input size."""

    device: str
    runtime: str
    height: int
    width: int
    teacher: dict[str, Any]  # the RestormerConfig the space is built from
    fixed: Latency
    stages: dict[str, dict[str, Latency]]  # stage name -> choice -> latency
    chipset: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    warmup: int = 0
    repeats: str = ""
    date: str = ""
    command: str = ""
    space_name: str | None = None
    end_to_end: dict[str, Latency] = field(default_factory=dict)  # architecture string -> latency
    # How the end-to-end programs were made: "lowered" (each architecture lowered whole, as edgeens compile does)
    # or "linked" (linked from this table's stage programs, edgeens.compile.link).
    end_to_end_programs: str = "lowered"
    families: dict[str, Any] | None = None  # letter -> block kind and knobs (None: a table of the paper's MambaIR)
    compute_unit: str | None = None  # AI Hub's --compute_unit (None: this machine's CPU)
    # AI Hub tables: how many layers each unit ran, and the share that fell back to the CPU from another unit.
    placement: dict[str, Any] | None = None
    precision: str = "fp32"  # of the programs timed (edgeens.compile.quantize.PRECISIONS)
    quantize_scope: str | None = None  # what was quantized, for a precision other than fp32

    @property
    def runtime_label(self) -> str:
        """The runtime with the precision of its programs, where it is not float: `executorch-xnnpack w8a8`."""
        return self.runtime if self.precision == "fp32" else f"{self.runtime} {self.precision}"

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(RestormerConfig(**self.teacher), families_from_dict(self.families))

    def predict_ms(self, architecture: str | tuple[str, ...]) -> float:
        """Fixed part plus the 8 chosen stages: the calibrated prediction of end-to-end latency."""
        tokens = self.space.parse(architecture) if isinstance(architecture, str) else architecture
        return self.fixed.median_ms + sum(
            self.stages[s.name][t].median_ms for s, t in zip(self.space.stages, tokens, strict=True)
        )

    def stale_programs(self) -> str | None:
        """A warning when this table timed programs of an older export form than this edgeens lowers, else None.
        Such a table still ranks architectures, but its scan stages were timed in a form since made faster."""
        form = self.versions.get("export_form", EXPORT_FORM_VERSION)
        if form == EXPORT_FORM_VERSION:
            return None
        return (
            f"its stage programs were lowered from export form {form}, this edgeens lowers form "
            f"{EXPORT_FORM_VERSION} (selective scans in longer chunks, faster in ExecuTorch): scan stages may be "
            "slower in it than they now are; --remeasure with a fresh --programs folder to refresh it"
        )

    def check_fits(self, space: SearchSpace, height: int, width: int) -> None:
        """Refuse a table measured for another space or input size (its numbers would be for other blocks)."""
        if RestormerConfig(**self.teacher) != space.teacher:
            raise ProfileError(
                f"this latency table was measured for another search space (teacher dim {self.teacher['dim']}, "
                f"blocks {self.teacher['num_blocks']}, refinement {self.teacher['num_refinement_blocks']}); "
                f"profile this space: edgeens profile --preset/--teacher ... --size {height}x{width}"
            )
        own = families_to_dict(self.space.families)
        for letter, definition in families_to_dict(space.families).items():
            if own.get(letter) != definition:
                raise ProfileError(
                    f"this latency table has no surrogate family {letter} = {definition} (it holds "
                    f"{', '.join(own) or 'none'}); profile the search's families: edgeens profile ... --families "
                    + ",".join(f.letter for f in space.families)
                )
        if (self.height, self.width) != (height, width):
            raise ProfileError(
                f"this latency table was measured at {self.height}x{self.width}, not {height}x{width}; latency "
                f"depends on the input size: run edgeens profile --size {height}x{width}"
            )

    def filename(self) -> str:
        """`<device>--<runtime>--<HxW>--<space>.json` (DESIGN's name plus the space: presets share a size); a
        quantized table's runtime carries its precision (`executorch-xnnpack-w8a8`)."""
        space = self.space_name or f"dim{self.teacher['dim']}"
        return f"{slug(self.device)}--{slug(self.runtime_label)}--{self.height}x{self.width}--{slug(space)}.json"

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir() or path.suffix != ".json":
            path = path / self.filename()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.to_dict(), indent=1)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table back, checking that it is complete: every (stage, choice) of its space has a latency."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(f"latency table {path} does not exist; run `edgeens profile` first") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ProfileError(f"latency table {path} is not readable JSON ({err}); measure it again") from None
        upgraded = upgrade_format(raw, "latency", UPGRADES, path) if isinstance(raw, dict) else None
        if upgraded is None:
            raise ProfileError(f"{path} is not an edgeens latency table (format {FORMAT})")
        raw = upgraded
        try:
            table = cls(
                **{k: v for k, v in raw.items() if k not in ("format", "fixed", "stages", "end_to_end")},
                fixed=_latency(raw["fixed"], "fixed"),
                stages={
                    stage: {choice: _latency(v, f"{stage}--{choice}") for choice, v in row.items()}
                    for stage, row in raw["stages"].items()
                },
                end_to_end={a: _latency(v, a) for a, v in raw.get("end_to_end", {}).items()},
            )
            space = table.space
        except (KeyError, TypeError, AttributeError) as err:
            raise ProfileError(f"latency table {path} is malformed or truncated ({err!r}); measure it again") from None
        missing = [f"{s.name}--{c}" for s in space.stages for c in s.choices if c not in table.stages.get(s.name, {})]
        if missing:
            raise ProfileError(f"latency table {path} lacks {', '.join(missing[:6])}: it is incomplete; re-run profile")
        return table

    @classmethod
    def wanted(
        cls,
        teacher: RestormerConfig,
        height: int,
        width: int,
        runtime: str,
        threads: int,
        space_name: str | None,
        precision: str = "fp32",
    ) -> LatencyTable:
        """An empty host table that names what a reusable one must match (what `existing_table` looks for)."""
        runtime_name = {"executorch": "executorch-xnnpack", "onnxruntime": "onnxruntime-cpu"}.get(runtime, runtime)
        return cls(
            "host",
            runtime_name,
            height,
            width,
            teacher.to_dict(),
            Latency(1, 1, 1, 1),
            {},
            threads=threads,
            space_name=space_name,
            precision=precision,
        )


def existing_table(
    folder: str | Path, wanted: LatencyTable, space: SearchSpace | None = None, say: Callable[[str], None] | None = None
) -> LatencyTable | None:
    """A host table in `folder` like `wanted` (`LatencyTable.wanted`: teacher configuration, size, runtime, thread
    count and precision) that covers every (stage, choice) of `space` (a table of more families serves a space of
    fewer): the one named for `wanted`'s space first, else any other that fits. A damaged table of the same size
    and runtime is said (to `say`), not passed over in silence: the user may have meant it to be reused."""
    probe, height, width = wanted, wanted.height, wanted.width
    named = Path(folder) / probe.filename()
    others = sorted(Path(folder).glob(f"host--{slug(probe.runtime_label)}--{height}x{width}--*.json"))
    for path in [named, *(p for p in others if p != named)]:
        if not path.is_file():
            continue
        try:
            table = LatencyTable.load(path)
        except ProfileError as err:
            if path == named:
                raise  # the table this space would be saved as is broken: say so rather than overwrite it
            if say:
                say(f"profile: {err}; it is not used")
            continue
        if (table.teacher, table.threads, table.precision) != (probe.teacher, probe.threads, probe.precision):
            continue
        try:
            table.check_fits(space or table.space, height, width)
        except ProfileError:
            continue
        return table
    return None


def compare_tables(first: LatencyTable, second: LatencyTable, tolerance: float = 0.10) -> dict[str, Any]:
    """Entry-by-entry agreement of two measurements of the same table: medians within `tolerance`, or else the
    entry is flagged (with both spreads, so a reader sees whether it was noise)."""
    pairs = {"fixed": (first.fixed, second.fixed)}
    for stage, row in first.stages.items():
        for choice, latency in row.items():
            pairs[f"{stage}--{choice}"] = (latency, second.stages[stage][choice])
    rows = {}
    for key, (a, b) in pairs.items():
        difference = abs(a.median_ms - b.median_ms) / min(a.median_ms, b.median_ms)
        rows[key] = {
            "first_ms": a.median_ms,
            "second_ms": b.median_ms,
            "difference": difference,
            "first_spread": a.spread,
            "second_spread": b.spread,
            "agrees": difference <= tolerance,
        }
    largest = max(rows, key=lambda k: rows[k]["difference"])
    return {
        "tolerance": tolerance,
        "entries": len(rows),
        "agreeing": sum(r["agrees"] for r in rows.values()),
        "largest_difference": rows[largest]["difference"],
        "largest_key": largest,
        "flagged": [k for k, r in rows.items() if not r["agrees"]],
        "rows": rows,
    }


def _latency(value: Any, key: str) -> Latency:
    latency = Latency(**value)
    numbers = (latency.median_ms, latency.p10_ms, latency.p90_ms)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in numbers) or latency.samples < 1:
        raise ProfileError(f"latency entry {key} is not a positive, finite measurement: {value}")
    return latency


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- penalties: what the search adds up per stage ---------------------------------------------------------------


def calibrated_penalty(table: LatencyTable) -> dict[str, dict[str, float]]:
    """A stage's penalty is its measured median latency in milliseconds."""
    return {stage: {choice: lat.median_ms for choice, lat in row.items()} for stage, row in table.stages.items()}


def heuristic_penalty(space: SearchSpace) -> dict[str, dict[str, float]]:
    """The paper's proxy: a full Restormer stack costs most, then larger, then smaller MambaIR stacks.

    Per stage, a surrogate stack of n blocks costs n / (depth + 1) and the Restormer stack 1 (so the Restormer stack
    is above the deepest surrogate one, and stages are weighted equally, as the paper gives no weights). The proxy
    knows block counts only: every family's stack of n blocks costs the same, which is exactly what measuring
    fixes."""
    table: dict[str, dict[str, float]] = {}
    for stage in space.stages:
        row = {}
        for choice in stage.choices:
            row[choice] = 1.0 if choice == RESTORMER else split_token(choice)[1] / (stage.depth + 1)
        table[stage.name] = row
    return table


def total_penalty(
    penalty: dict[str, dict[str, float]], space: SearchSpace, architecture: str | tuple[str, ...]
) -> float:
    tokens = space.parse(architecture) if isinstance(architecture, str) else architecture
    return sum(penalty[s.name][t] for s, t in zip(space.stages, tokens, strict=True))


def searched_table(run_dir: str | Path, current: LatencyTable) -> LatencyTable:
    """The latency table a run's search used (pinned beside its front), else `current`: predictions and the report
    must quote the table the choice was made with, not one measured since."""
    from edgeens.rundir import RunFolder

    pinned = RunFolder(Path(run_dir)).searched_table
    if not pinned.is_file():
        return current
    table = LatencyTable.load(pinned)
    if (table.device, table.runtime_label) != (current.device, current.runtime_label):  # e.g. CPU, now NPU
        raise ProfileError(
            f"{run_dir}'s search used the table of {table.device} / {table.runtime_label}, not {current.device} / "
            f"{current.runtime_label}: use a new --out folder for another device, compute unit or precision"
        )
    return table


def search_penalty(
    kind: str, table: LatencyTable | None, space: SearchSpace, height: int, width: int
) -> tuple[dict[str, dict[str, float]], str, str]:
    """The search's penalty of every (stage, choice) of `space`, the label of its axis and its source (the table's
    file name, or "heuristic"): `calibrated` needs a table measured for this space and size."""
    if kind == "calibrated":
        if table is None:
            raise ProfileError(
                "the calibrated penalty needs a latency table: --table profiles/<device>--<runtime>--<HxW>--"
                "<space>.json (from edgeens profile), or --penalty heuristic for the paper's proxy"
            )
        table.check_fits(space, height, width)
        return calibrated_penalty(table), "predicted latency (ms)", table.filename()
    if kind == "heuristic":
        return heuristic_penalty(space), "heuristic penalty", "heuristic"
    raise ProfileError(f"unknown penalty {kind!r}; choose calibrated (with --table) or heuristic")
