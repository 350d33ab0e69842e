from __future__ import annotations

import numpy as np
import pytest

from edgeens.search.pareto import hypervolume, hypervolume_curve, knee, nearest_to_knee, pareto_mask

# (psnr_drop, penalty): a convex front with an obvious bend at (-0.5, 3), plus two dominated points.
POINTS = np.array([[0.0, 10.0], [-0.2, 6.0], [-0.5, 3.0], [-2.0, 2.0], [-4.0, 1.5], [-1.0, 8.0], [-3.0, 3.0]])


def test_front_excludes_dominated_points() -> None:
    assert pareto_mask(POINTS).tolist() == [True, True, True, True, True, False, False]


def test_hypervolume_matches_the_area_by_hand_and_grows_monotonically() -> None:
    square = np.array([[0.0, 1.0]])
    assert hypervolume(square, (-1.0, 2.0)) == pytest.approx(1.0)
    two = np.array([[0.0, 1.0], [-0.5, 0.5]])  # adds a 0.5 x 0.5 step
    assert hypervolume(two, (-1.0, 2.0)) == pytest.approx(1.25)
    curve = hypervolume_curve(POINTS, (-5.0, 11.0))
    assert np.all(np.diff(curve) >= 0) and curve[-1] == pytest.approx(hypervolume(POINTS, (-5.0, 11.0)))


def test_knee_is_the_point_farthest_from_the_chord() -> None:
    chosen = knee(POINTS)
    assert tuple(POINTS[chosen.index]) == (-0.5, 3.0)
    assert list(POINTS[chosen.front][:, 1]) == sorted(POINTS[chosen.front][:, 1])  # by increasing penalty
    candidates = nearest_to_knee(POINTS, chosen.index, 3)
    assert candidates[0] == chosen.index and all(pareto_mask(POINTS)[candidates])


def test_a_front_of_two_points_has_no_bend_and_returns_the_best_psnr() -> None:
    assert knee(np.array([[0.0, 5.0], [-1.0, 1.0]])).index == 0
    with pytest.raises(ValueError, match="empty"):
        knee(np.zeros((0, 2)))
