from __future__ import annotations

import numpy as np
import pytest

from edgeens.data.transforms import ProgressiveSchedule, dihedral


def test_eight_dihedral_modes_are_distinct_and_restormer_ordered() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    outs = [dihedral(x, m) for m in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    assert np.array_equal(outs[1], np.flipud(x))
    assert np.array_equal(outs[2], np.rot90(x))
    assert np.array_equal(outs[7], np.flipud(np.rot90(x, 3)))
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_progressive_schedule_matches_restormer_boundaries() -> None:
    s = ProgressiveSchedule()
    total = 300_000
    assert s.at(1, total) == (128, 8)
    assert s.at(92_000, total) == (128, 8)
    assert s.at(92_001, total) == (160, 5)
    assert s.at(156_001, total) == (192, 4)
    assert s.at(276_001, total) == (384, 1)
    assert s.scaled(64).patch_sizes == (24, 24, 32, 40, 56, 64)


def test_balanced_schedule_spends_the_same_pixels_at_every_patch() -> None:
    from edgeens.data.transforms import ProgressiveSchedule

    schedule = ProgressiveSchedule().scaled(128).balanced(32768)
    assert schedule.patch_sizes == ProgressiveSchedule().scaled(128).patch_sizes
    assert schedule.batch_sizes == (20, 10, 8, 4, 3, 2)
    for patch, batch in zip(schedule.patch_sizes, schedule.batch_sizes, strict=True):
        assert 0.6 < batch * patch * patch / 32768 < 1.4
    assert ProgressiveSchedule().balanced(100).batch_sizes == (1,) * 6  # never an empty mini-batch


def test_schedule_maps_onto_a_patch_range_for_warm_starts() -> None:
    ranged = ProgressiveSchedule().scaled(192, 128)
    assert ranged.patch_sizes[0] == 128 and ranged.patch_sizes[-1] == 192
    assert list(ranged.patch_sizes) == sorted(ranged.patch_sizes)
    assert set(ProgressiveSchedule().scaled(96, 96).patch_sizes) == {96}
    with pytest.raises(ValueError, match="smallest patch"):
        ProgressiveSchedule().scaled(64, 128)
