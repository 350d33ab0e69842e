"""Search plots: the evaluated architectures with their front and knee, and hypervolume against evaluations for
each method of a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(records: list[dict[str, Any]], front: dict[str, Any], path: str | Path, penalty_label: str) -> None:
    """Every evaluation, the front as a step line, the knee and the fine-tuning candidates. Evaluations are coloured
    by the surrogate families they use when the space has several (so each family's place on the front shows),
    else by evaluation order."""
    plt = _pyplot()
    drops = np.array([r["psnr_drop"] for r in records])
    penalties = np.array([r["penalty"] for r in records])
    figure, axes = plt.subplots(figsize=(7.5, 5))
    mixes = [family_mix(r["architecture"]) for r in records]
    letters = {letter for mix in mixes for letter in mix.split("+") if len(letter) == 1}
    if len(letters) > 1:
        colours = plt.get_cmap("tab10")
        for index, mix in enumerate(sorted(set(mixes), key=lambda m: (len(m), m))):
            chosen = np.array([m == mix for m in mixes])
            axes.scatter(penalties[chosen], drops[chosen], s=18, color=colours(index % 10), label=mix)
    else:
        dots = axes.scatter(penalties, drops, c=np.arange(len(records)), cmap="viridis", s=18, label="evaluated")
        figure.colorbar(dots, ax=axes, label="evaluation")
    line = [(p["penalty"], p["psnr_drop"]) for p in front["front"]]
    axes.step(*zip(*line, strict=True), where="post", color="black", lw=1, label="Pareto front")
    for c in front["candidates"]:
        axes.scatter(c["penalty"], c["psnr_drop"], s=90, facecolors="none", edgecolors="tab:orange", lw=1.5)
    axes.scatter([], [], s=90, facecolors="none", edgecolors="tab:orange", label="fine-tuning candidates")
    knee = front["knee"]
    axes.scatter(knee["penalty"], knee["psnr_drop"], marker="*", s=220, color="tab:red", label="knee")
    axes.annotate(
        knee["architecture"],
        (knee["penalty"], knee["psnr_drop"]),
        fontsize=8,
        xytext=(5, -12),
        textcoords="offset points",
    )
    if front.get("max_penalty") is not None:  # a --speedup run: candidates come from left of this line
        axes.axvline(front["max_penalty"], ls="--", lw=1, color="grey", label="latency budget")
    if penalties.min() > 0 and penalties.max() / penalties.min() > 20:
        axes.set_xscale("log")  # tens of ms to seconds: on a linear axis the fast end is one blob
    axes.set_xlabel(penalty_label)
    axes.set_ylabel("PSNR drop vs teacher (dB)")
    axes.set_title(f"ENS: {len(records)} evaluations, front of {len(front['front'])}")
    axes.legend(fontsize=8, loc="best")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def family_mix(architecture: str) -> str:
    """The surrogate families an architecture uses, e.g. 'G+S' for `G1-R-S2-...`; 'R only' for the teacher."""
    letters = sorted({token[0] for token in architecture.split("-") if token != "R"})
    return "+".join(letters) if letters else "R only"


def plot_compare(result: dict[str, Any], path: str | Path) -> None:
    """Median hypervolume fraction against evaluations per method, with the range over seeds shaded."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    best = result["best_hypervolume"]
    for method, curves in result["curves"].items():
        if method == "rule":
            value = curves[0][-1] / best
            axes.axhline(value, ls=":", color="gray", label=f"rule-based 50/50 ({len(curves[0])} architectures)")
            continue
        length = min(len(c) for c in curves)
        values = np.array([c[:length] for c in curves]) / best
        x = np.arange(1, length + 1)
        (drawn,) = axes.plot(x, np.median(values, axis=0), label=f"{method} (median of {len(curves)})")
        axes.fill_between(x, values.min(axis=0), values.max(axis=0), color=drawn.get_color(), alpha=0.15)
    axes.axhline(0.95, ls="--", lw=0.8, color="black")
    axes.set_xlabel("evaluations (initial design included)")
    truth = "true front's" if result["best_is_true_front"] else "best found"
    axes.set_ylabel(f"hypervolume / {truth}")
    penalty = result.get("penalty")
    axes.set_title(
        f"{result['seeds']} seeds, budget {result['budget']}, initial {result['initial']}, batch {result['batch']}"
        + (f"; penalty: {penalty}" if penalty else ""),
        fontsize=9,
    )
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
