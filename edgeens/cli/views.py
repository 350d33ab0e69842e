"""The tables the `edgeens` command prints: each turns one step's result into a rich Table (no computing here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:  # a type only: `edgeens --help` does not load torch
    from edgeens.profile.table import LatencyTable


def _table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> Table:
    view = Table(title=title)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*row)
    return view


def pool_view(manifest: Mapping[str, Any], pool: Path) -> Table:
    rows = []
    for name, entry in manifest["surrogates"].items():
        before, after = entry["alignment_before"]["relative_l2"], entry["alignment_after"]["relative_l2"]
        rows.append((name, f"{before:.4f}", f"{after:.4f}", f"{before / after:.1f}x"))
    title = f"block pool: {pool}  (held-out alignment error, relative L2)"
    return _table(title, ("surrogate", "before", "after", "drop"), rows)


def stage_programs_view(manifest: Mapping[str, Any], folder: Path, size: tuple[int, int], threads: int) -> Table:
    rows = [
        (
            key,
            "x".join(map(str, entry["input_shape"])),
            f"{entry['bytes'] / 2**20:.2f}",
            f"{entry['export_seconds']:.1f}",
            str(entry["delegated_calls"]),
            f"{entry['verification']['max_abs_error']:.1e}",
        )
        for key, entry in manifest["programs"].items()
    ]
    title = f"stage programs in {folder} ({size[0]}x{size[1]}, {threads} thread(s))"
    return _table(title, ("program", "input", "MiB", "export s", "delegates", "max abs err"), rows)


def latency_view(table: LatencyTable, path: Path) -> Table:
    entries = [("fixed", "-", table.fixed)]
    entries += [(stage, choice, lat) for stage, row in table.stages.items() for choice, lat in row.items()]
    rows = [
        (
            stage,
            choice,
            f"{lat.median_ms:.3f}",
            f"{lat.p10_ms:.3f}-{lat.p90_ms:.3f}",
            str(lat.samples),
            "noisy" if lat.noisy else "",
        )
        for stage, choice, lat in entries
    ]
    title = f"{path}  ({table.runtime_label}, {table.threads} thread(s), {table.height}x{table.width})"
    return _table(title, ("stage", "choice", "median ms", "p10-p90 ms", "runs", ""), rows)


def validation_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    for name in ("calibrated", "heuristic"):
        r = report[name]
        lines.append(
            f"{name}: Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}, Kendall tau-b {r['kendall_tau_b']:.3f}"
            + (f", MAPE {r['mape']:.1%}, within 10% {r['within_10pct']:.0%}" if "mape" in r else "")
            + f"; linear fit MAPE {r['fit_mape']:.1%}"
        )
    return lines


def front_view(front: Mapping[str, Any], teacher_psnr: float, penalty_label: str) -> Table:
    candidates = {c["architecture"] for c in front["candidates"]}
    rows = []
    for point in front["front"]:
        mark = "knee" if point["architecture"] == front["knee"]["architecture"] else ""
        mark += " candidate" if point["architecture"] in candidates else ""
        rows.append(
            (
                point["architecture"],
                f"{point['psnr']:.2f}",
                f"{point['psnr_drop']:+.3f}",
                f"{point['penalty']:.4g}",
                mark,
            )
        )
    title = f"Pareto front after {front['evaluations']} evaluations (teacher {teacher_psnr:.2f} dB)"
    return _table(title, ("architecture", "PSNR dB", "drop dB", penalty_label, ""), rows)


def methods_view(result: Mapping[str, Any], budget: int, seeds: int, exhaustive: bool) -> Table:
    import numpy as np

    from edgeens.search.loop import fraction_at

    checkpoints = sorted({n for n in (20, 40, 60, budget) if n <= budget})
    rows = []
    for method in result["curves"]:
        cells = [method]
        for n in checkpoints:
            values = fraction_at(result, method, n)
            cells.append(f"{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        rows.append(cells)
    title = f"hypervolume / {'true front' if exhaustive else 'best found'} ({seeds} seeds)"
    return _table(title, ("method", *(f"@{n} median (min-max)" for n in checkpoints)), rows)


def finetune_view(summary: Mapping[str, Any]) -> Table:
    rows = [
        (
            row["architecture"],
            f"{row['psnr_composed']:.2f}",
            f"{row['psnr_finetuned']:.2f}",
            "best" if row["architecture"] == summary["best"] else "",
        )
        for row in summary["candidates"]
    ]
    title = f"fine-tuned candidates ({summary['iterations']} iterations, {summary['ranks']} rank(s))"
    return _table(title, ("architecture", "composed dB", "fine-tuned dB", ""), rows)


def bench_view(summaries: Iterable[Mapping[str, Any]], note: str) -> Table:
    rows = [
        (s["model"], str(s["images"]), f"{s['psnr']:.2f}", f"{s['ssim']:.4f}", f"{s['seconds']:.3f}") for s in summaries
    ]
    return _table(note, ("model", "images", "PSNR dB", "SSIM", "s / image"), rows)


def run_view(summary: Mapping[str, Any], out: Path) -> Table:
    rows = [
        (name, "reused" if entry["reused"] else "done", f"{entry['seconds']:.0f}")
        for name, entry in summary["steps"].items()
    ]
    return _table(f"edgeens run: {out}", ("step", "status", "seconds"), rows)


def sweep_view(rows: Iterable[Mapping[str, Any]], width: int, threads: int) -> Table:
    cells = []
    for r in rows:
        if "skipped" in r:
            cells.append((r["block"], str(r["size"]), "-", r["skipped"], "-"))
        else:
            cells.append(
                (
                    r["block"],
                    str(r["size"]),
                    f"{r['flops'] / 1e9:.2f}",
                    f"{r['latency']['median_ms']:.2f}",
                    f"{r['peak_memory_mib']:.0f}",
                )
            )
    title = f"resolution sweep, width {width}, {threads} thread(s)"
    return _table(title, ("block", "size", "GFLOPs", "median ms", "peak MiB"), cells)
