"""Pareto fronts, hypervolume and the knee of a two-objective search (PSNR drop up, penalty down).

Points are (psnr_drop, penalty): the drop is the hybrid's PSNR minus the teacher's (0 is as good as the teacher,
higher is better) and the penalty is the stage-cost sum (lower is better). BoTorch maximises, so internally a point
is (psnr_drop, -penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

KNEE_METHOD = (
    "knee = the front point farthest from the straight line between the front's two extremes, with both "
    "objectives scaled to [0, 1] over the front (Das's normal-boundary 'bulge'; spec/search.md section 2)"
)


def _maximised(points: np.ndarray) -> torch.Tensor:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return torch.from_numpy(np.stack([points[:, 0], -points[:, 1]], axis=1))


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Which (psnr_drop, penalty) points no other point dominates (duplicates: the first one counts)."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(_maximised(points), deduplicate=True).numpy()


def hypervolume(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by `points` and bounded by `reference` = (lowest drop, highest penalty) that still counts."""
    if len(points) == 0:
        return 0.0
    ref = _maximised(np.array([reference]))[0]
    return float(Hypervolume(ref).compute(_maximised(points)))


def hypervolume_curve(points: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """Hypervolume after each evaluation, in order (the curve a comparison plots)."""
    return np.array([hypervolume(points[: n + 1], reference) for n in range(len(points))])


@dataclass(frozen=True)
class Knee:
    index: int  # into the points given to `knee`
    distances: np.ndarray  # normalised distance of every front point to the chord (nan off the front)
    front: np.ndarray  # indices of the front, by increasing penalty


def knee(points: np.ndarray) -> Knee:
    """The knee of the front of `points` (see KNEE_METHOD). With fewer than 3 front points there is no bend: the
    best-PSNR point of the front is returned."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        raise ValueError("no evaluated architectures: the front is empty")
    front = np.flatnonzero(pareto_mask(points))
    front = front[np.argsort(points[front, 1], kind="stable")]
    distances = np.full(len(points), np.nan)
    if len(front) < 3:
        best = front[np.argmax(points[front, 0])]
        distances[front] = 0.0
        return Knee(int(best), distances, front)
    f = points[front]
    scaled = (f - f.min(axis=0)) / np.where(np.ptp(f, axis=0) > 0, np.ptp(f, axis=0), 1.0)
    start, end = scaled[0], scaled[-1]  # cheapest and most accurate ends of the front
    chord = (end - start) / np.linalg.norm(end - start)
    offsets = scaled - start
    distances[front] = np.abs(offsets[:, 0] * chord[1] - offsets[:, 1] * chord[0])
    return Knee(int(front[np.argmax(distances[front])]), distances, front)


def nearest_to_knee(points: np.ndarray, knee_index: int, count: int) -> list[int]:
    """The knee and the `count - 1` other points closest to it in objective space (both objectives scaled to
    [0, 1] over all points), front points first: the candidates worth fine-tuning."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    span = np.where(np.ptp(points, axis=0) > 0, np.ptp(points, axis=0), 1.0)
    distance = np.linalg.norm((points - points[knee_index]) / span, axis=1)
    on_front = pareto_mask(points)
    order = sorted(range(len(points)), key=lambda i: (not on_front[i], distance[i]))
    return order[:count]
