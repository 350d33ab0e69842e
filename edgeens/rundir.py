"""Where everything of one `edgeens run` lives, and the one naming rule for stage-program folders (the bottom layer:
it imports nothing of edgeens, so every step, the CLI and the report can use it).

A run writes only inside its folder: the teacher it adopted or trained, the block pool and the features it was
distilled from, the latency table it measured (if it measured one) and the stage programs behind it, the search,
the fine-tuned candidates, the exported model, the comparison and the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The steps of `edgeens run`, in order (edgeens.run binds each to its function).
STEPS = ("teacher", "distill", "profile", "search", "finetune", "compile", "compare", "report")
TEACHER_FINETUNED = "teacher, fine-tuned"  # the compare step's row of the teacher trained as long as the hybrids


def stage_programs_folder(parent: str | Path, space_name: str, height: int, width: int) -> Path:
    """The folder of one teacher's stage programs at one input size, under `parent`: `stages-<space>-<H>x<W>`.
    `space_name` is the preset (tiny, paper) or the teacher checkpoint's file stem, without the families (one
    folder grows as families are added). `edgeens compile --stages`, `edgeens profile` and `edgeens run` all use
    it, so a program built by one is reused by the others."""
    return Path(parent) / f"stages-{space_name}-{height}x{width}"


def _finished(summary: Path) -> bool:
    try:
        return bool(json.loads(summary.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class RunFolder:
    """Every path of one run, and whether each step's outputs are there."""

    root: Path

    @property
    def data(self) -> Path:
        """The task's data: where the train / val / test pairs come from (edgeens.data.task, written first)."""
        return self.root / "data.json"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def teacher_weights(self) -> Path:
        return self.teacher / "teacher.safetensors"

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def profile(self) -> Path:
        """Latency tables this run measured (a committed table it reuses stays where it is)."""
        return self.root / "profile"

    def stage_programs(self, space_name: str, height: int, width: int) -> Path:
        return stage_programs_folder(self.root, space_name, height, width)

    @property
    def search(self) -> Path:
        return self.root / "search"

    @property
    def searched_table(self) -> Path:
        """The latency table the search chose with, pinned beside its front."""
        return self.search / "latency-table.json"

    @property
    def finetune(self) -> Path:
        return self.root / "finetune"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def compare(self) -> Path:
        return self.root / "compare"

    @property
    def compare_result(self) -> Path:
        return self.compare / "compare.json"

    @property
    def crops(self) -> Path:
        """The restored crops the compare step made for the report to show (float32 arrays)."""
        return self.compare / "crops.npz"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def teacher_done(self) -> bool:
        return self.teacher_weights.is_file() and _finished(self.teacher / "teacher.json")

    def finetune_done(self) -> bool:
        return (self.finetune / "finetune.json").is_file() and (self.finetune / "best.safetensors").is_file()
