"""What one latency table is: the request the profile step, the host measurement and the AI Hub measurement all
read, so that each option has one home (its default here) and travels down whole."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeens.compile.quantize import Quantization
from edgeens.errors import EdgeensError
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace
from edgeens.profile.table import LatencyTable
from edgeens.train.pool import BlockPool


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many timed runs to take for one program."""

    warmup_runs: int = 3
    warmup_seconds: float = 0.2
    warmup_max_seconds: float = 10.0
    min_repeats: int = 10
    max_repeats: int = 100
    max_seconds: float = 10.0
    min_samples: int = 3
    stable_within: float = 0.02
    rounds: int = 2

    def describe(self) -> str:
        return (
            f"warm-up >= {self.warmup_runs} runs and {self.warmup_seconds:g} s (at most {self.warmup_max_seconds:g} s "
            f"once one run is done); {self.min_repeats}-{self.max_repeats} runs until the median moves < "
            f"{self.stable_within:.0%} (or {self.max_seconds:g} s, but never fewer than {self.min_samples}); "
            f"{self.rounds} shuffled round{'s' if self.rounds > 1 else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    hub_timeout: float = 3600.0  # seconds one AI Hub job may take
    compute_unit: str = "cpu"  # AI Hub's --compute_unit
    max_jobs: int | None = None  # AI Hub jobs one command may submit (None: no bound)
    quantization: Quantization = field(default_factory=Quantization)  # the programs' precision (host tables)
    calibration_args: tuple[str, ...] = ()  # where a quantized table's calibration crops came from, as options

    @property
    def command(self) -> str:
        """The `edgeens profile` command that reproduces the table, from the resolved options (what `edgeens
        profile` and `edgeens run` record in the tables they measure; sys.argv is not ours under a runner)."""
        families = "" if self.surrogates else ",".join(f.letter for f in self.space.families)
        height, width = self.size
        policy, default = self.policy, TimingPolicy()
        command = shlex.join(
            [
                "edgeens",
                "profile",
                "--device",
                self.device,
                *self.space_args,
                *(["--pool", str(self.pool_path)] if self.pool_path else []),
                *(["--families", families] if families else []),
                "--size",
                f"{height}x{width}",
                "--runtime",
                self.runtime if self.device == "host" else self.hub_runtime,
                "--threads",
                str(self.threads),
                "--min-repeats",
                str(policy.min_repeats),
                "--max-repeats",
                str(policy.max_repeats),
                *(["--min-samples", str(policy.min_samples)] if policy.min_samples != default.min_samples else []),
                *(["--rounds", str(policy.rounds)] if policy.rounds != default.rounds else []),
            ]
        )
        if self.quantization.quantized:  # calibrated on the task's training crops: the task is part of the table
            command += f" --quantize {self.quantization.precision} --scope {self.quantization.scope}"
            command += "".join(f" {shlex.quote(arg)}" for arg in self.calibration_args)
        return command

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def wanted_table(self) -> LatencyTable:
        """What a reusable host table must match: this teacher, size, runtime, thread count and precision."""
        return LatencyTable.wanted(
            self.teacher.config,
            self.height,
            self.width,
            self.runtime,
            self.threads,
            self.space_name,
            self.quantization.precision,
        )

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
