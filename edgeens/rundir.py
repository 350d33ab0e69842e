"""Names shared by the steps of one `edgeens run` folder and the report that reads it (the bottom layer: it
imports nothing of edgeens, so every step and the report can use it)."""

from __future__ import annotations

from pathlib import Path

TEACHER_FINETUNED = "teacher, fine-tuned"  # the compare step's row of the teacher trained as long as the hybrids


def searched_table_path(run_dir: str | Path) -> Path:
    """The latency table the run's search chose with, pinned beside its front."""
    return Path(run_dir) / "search" / "latency-table.json"
