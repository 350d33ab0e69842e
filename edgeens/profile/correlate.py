"""Does the per-block table predict whole-network latency? Architectures spread over the predicted range, measured
end to end, compared with the calibrated prediction (fixed part + stage latencies) and with the paper's heuristic
penalty: Pearson, Spearman and Kendall tau-b, mean absolute percentage error, and the share within +-10%."""

from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np
from scipy import stats

from edgeens.models.space import SearchSpace, format_architecture
from edgeens.profile.table import LatencyTable, heuristic_penalty, total_penalty

ENUMERATE_LIMIT = 200_000  # spaces up to this size are enumerated; larger ones are sampled


SPACINGS = ("linear", "log")


def spread_architectures(table: LatencyTable, count: int, seed: int = 0, spacing: str = "linear") -> list[str]:
    """`count` architectures whose predicted latencies are evenly spaced between the fastest and the slowest
    (both included), so the validation covers the whole range the search will see. `spacing="log"` spaces them
    evenly in log latency: every architecture weighs the same in MAPE and rank correlation, so when the range
    spans two orders of magnitude (paper-size MambaIR stacks) log spacing covers it evenly in relative terms and
    does not spend most of the measuring time on the slowest architectures."""
    space = table.space
    if count < 2:
        raise ValueError("validation needs at least 2 architectures")
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of: {', '.join(SPACINGS)}")
    if space.size <= ENUMERATE_LIMIT:
        candidates = list(space.architectures())
    else:
        rng = np.random.default_rng(seed)
        candidates = [
            tuple(s.choices[rng.integers(len(s.choices))] for s in space.stages) for _ in range(ENUMERATE_LIMIT)
        ] + [space.teacher_only, space.mamba_only]
    predicted = np.array([table.predict_ms(a) for a in candidates])
    order = np.argsort(predicted, kind="stable")
    low, high = predicted[order[0]], predicted[order[-1]]
    targets = np.geomspace(low, high, count) if spacing == "log" else np.linspace(low, high, count)
    chosen: list[str] = []
    position = 0
    for target in targets:  # nearest unused candidate to each evenly spaced target
        while position + 1 < len(order) and predicted[order[position + 1]] <= target:
            position += 1
        for index in islice(_outward(position, len(order)), len(order)):
            name = format_architecture(candidates[order[index]])
            if name not in chosen:
                chosen.append(name)
                break
    return chosen


def _outward(start: int, size: int):
    yield start
    for step in range(1, size):
        for index in (start + step, start - step):
            if 0 <= index < size:
                yield index


def agreement(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Correlations of a predictor with measured latency, and the percentage errors of its linear fit
    (latency ~ a + b * predictor absorbs a constant offset and a scale, as nn-Meter and OFA do)."""
    slope, intercept = np.polyfit(predicted, measured, 1)
    fitted = intercept + slope * predicted
    relative = np.abs(fitted - measured) / measured
    pearson = stats.pearsonr(predicted, measured)
    return {
        "pearson": float(pearson.statistic),
        "spearman": float(stats.spearmanr(predicted, measured).statistic),
        "kendall_tau_b": float(stats.kendalltau(predicted, measured, variant="b").statistic),
        "fit_intercept_ms": float(intercept),
        "fit_slope": float(slope),
        "fit_mape": float(relative.mean()),
        "fit_within_10pct": float((relative <= 0.10).mean()),
    }


def validation_report(table: LatencyTable) -> dict[str, Any]:
    """Compare the table's predictions with its end-to-end measurements (needs >= 3 of them)."""
    space: SearchSpace = table.space
    names = list(table.end_to_end)
    if len(names) < 3:
        raise ValueError(f"validation needs at least 3 end-to-end measurements, the table has {len(names)}")
    measured = np.array([table.end_to_end[a].median_ms for a in names])
    calibrated = np.array([table.predict_ms(a) for a in names])
    heuristic = np.array([total_penalty(heuristic_penalty(space), space, a) for a in names])
    relative = np.abs(calibrated - measured) / measured
    return {
        "architectures": len(names),
        "end_to_end_programs": table.end_to_end_programs,
        "calibrated": {
            **agreement(calibrated, measured),
            "mape": float(relative.mean()),  # the prediction itself, without any fit
            "within_10pct": float((relative <= 0.10).mean()),
        },
        "heuristic": agreement(heuristic, measured),
        "rows": [
            {"architecture": a, "measured_ms": m, "predicted_ms": p, "heuristic_penalty": h}
            for a, m, p, h in zip(names, measured.tolist(), calibrated.tolist(), heuristic.tolist(), strict=True)
        ],
    }


def plot_validation(table: LatencyTable, report: dict[str, Any], path: str) -> None:
    """Measured vs predicted (calibrated, with y = x and +-10% bands) beside measured vs the heuristic penalty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    measured = np.array([r["measured_ms"] for r in rows])
    predicted = np.array([r["predicted_ms"] for r in rows])
    heuristic = np.array([r["heuristic_penalty"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    low, high = 0.9 * min(measured.min(), predicted.min()), 1.1 * max(measured.max(), predicted.max())
    line = np.geomspace(low, high, 50)
    left.plot(line, line, "k-", lw=1, label="y = x")
    left.fill_between(line, 0.9 * line, 1.1 * line, color="0.85", label="+-10%")
    left.scatter(predicted, measured, s=18, color="tab:blue")
    c = report["calibrated"]
    left.set(
        xlabel="predicted: fixed part + sum of stage latencies (ms)",
        ylabel="measured end to end (ms)",
        title=f"calibrated: Spearman {c['spearman']:.3f}, MAPE {c['mape']:.1%}",
    )
    left.legend(loc="upper left")
    if high / low > 20:  # a range over orders of magnitude (paper-size spaces): relative errors read on log axes
        left.set(xscale="log", yscale="log")
        right.set(yscale="log")
    h = report["heuristic"]
    right.scatter(heuristic, measured, s=18, color="tab:orange")
    order = np.argsort(heuristic)
    fit = h["fit_intercept_ms"] + h["fit_slope"] * heuristic[order]
    shown = fit > 0  # a fitted line below zero has no place on a log axis
    right.plot(heuristic[order][shown], fit[shown], "k--", lw=1, label="fit")
    right.set(
        xlabel="paper's heuristic penalty (sum over stages)",
        ylabel="measured end to end (ms)",
        title=f"heuristic: Spearman {h['spearman']:.3f}, fit MAPE {h['fit_mape']:.1%}",
    )
    right.legend(loc="upper left")
    fig.suptitle(
        f"{table.device} ({table.chipset}), {table.runtime}, {table.height}x{table.width}, "
        f"{table.threads} thread(s), {report['architectures']} architectures"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
