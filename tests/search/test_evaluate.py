from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeens.metrics import psnr
from edgeens.models.hybrid import HybridUNet
from edgeens.models.restormer import Restormer
from edgeens.models.space import FAMILIES, SearchSpace
from edgeens.models.surrogates import build_surrogate
from edgeens.search.evaluate import HybridEvaluator
from edgeens.train.pool import PoolError

SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


def small_teacher_and_pool(seed: int = 0):
    torch.manual_seed(seed)
    teacher = Restormer(**SMALL).eval()
    pool = {
        (s.name, t): build_surrogate(s, t, FAMILIES["M"]).eval() for s, t in SearchSpace(teacher.config).surrogates()
    }
    return teacher, pool


def pairs(count: int = 3, size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    clean = [rng.uniform(size=(size, size + 8 * i, 3)).astype(np.float32) for i in range(count)]  # two shapes
    return [(np.clip(c + rng.normal(0, 0.1, c.shape), 0, 1).astype(np.float32), c) for c in clean]


def test_cached_evaluations_equal_the_whole_hybrid_forward() -> None:
    teacher, pool = small_teacher_and_pool()
    data = pairs()
    evaluator = HybridEvaluator(teacher, pool, data)
    for architecture in ("M1-R-M1-M2-R-M1-R-M1", "M1-R-M1-M2-R-M1-R-R", "M1-R-M1-R-R-R-R-R"):
        result = evaluator(architecture)
        hybrid = HybridUNet.from_teacher(teacher, architecture, pool).eval()
        with torch.no_grad():
            direct = [
                psnr(
                    hybrid(torch.from_numpy(lq.transpose(2, 0, 1))[None])[0].clamp(0, 1).numpy().transpose(1, 2, 0), gt
                )
                for lq, gt in data
            ]
        assert result.psnr == pytest.approx(float(np.mean(direct)), abs=1e-4)
        assert result.psnr_drop == pytest.approx(result.psnr - evaluator.teacher_psnr)
    # The second and third share 7 and 3 stages with an earlier architecture: only the rest ran.
    assert evaluator.stages_reused == 7 + 3 + 0 and evaluator("R-R-R-R-R-R-R-R").psnr_drop == 0.0


def test_a_tight_cache_evicts_but_stays_correct() -> None:
    teacher, pool = small_teacher_and_pool()
    roomy = HybridEvaluator(teacher, pool, pairs())
    tight = HybridEvaluator(teacher, pool, pairs(), cache_bytes=200_000)
    for architecture in ("M1-M1-M1-M2-M1-M1-M1-M1", "R-M1-R-M2-R-M1-R-M1", "M1-M1-M1-M2-M1-M1-M1-R"):
        assert tight(architecture).psnr == pytest.approx(roomy(architecture).psnr, abs=1e-6)
    assert tight.cached_bytes <= 200_000


def test_a_pool_missing_a_surrogate_is_refused_before_any_evaluation() -> None:
    teacher, pool = small_teacher_and_pool()
    del pool[("latent", "M2")]
    with pytest.raises(PoolError, match="latent--M2"):
        HybridEvaluator(teacher, pool, pairs())
