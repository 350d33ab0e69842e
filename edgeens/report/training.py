"""The training curve of a run folder's `log.jsonl`: L1 loss (smoothed) and the logged validation PSNR against
iterations, with any reference levels (a classical method on the same photos) drawn across."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_log(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(loss entries, validation entries) of a training log."""
    entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [e for e in entries if "loss" in e], [e for e in entries if "validation_psnr" in e]


def plot_training_curve(
    log: str | Path, path: str | Path, title: str, references: dict[str, float] | None = None
) -> None:
    """Loss (moving mean over 50 iterations) on the left axis, validation PSNR on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses, validations = read_log(log)
    figure, loss_axis = plt.subplots(figsize=(7.5, 4.2))
    steps = np.array([e["iteration"] for e in losses])
    values = np.array([e["loss"] for e in losses])
    window = min(50, len(values))
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    loss_axis.plot(steps[window - 1 :], smooth, color="tab:gray", lw=1, label="L1 loss (mean of 50)")
    loss_axis.set_xlabel("iteration")
    loss_axis.set_ylabel("L1 loss")
    psnr_axis = loss_axis.twinx()
    if validations:
        psnr_axis.plot(
            [e["iteration"] for e in validations],
            [e["validation_psnr"] for e in validations],
            "o-",
            color="tab:blue",
            label="validation PSNR (whole photos)",
        )
    for (name, level), colour in zip((references or {}).items(), ("tab:red", "tab:green", "tab:orange"), strict=False):
        psnr_axis.axhline(level, color=colour, ls="--", lw=1, label=f"{name}: {level:.2f} dB")
    psnr_axis.set_ylabel("PSNR (dB)")
    handles = loss_axis.get_legend_handles_labels()[0] + psnr_axis.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="upper center", fontsize=8, ncol=2, bbox_to_anchor=(0.5, 0.93))
    loss_axis.set_title(title, fontsize=10, pad=40)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
