from __future__ import annotations

import numpy as np
import torch

from edgeens.compare import SCORE_OVERLAP, WHOLE_PIXELS, score
from edgeens.metrics import psnr
from edgeens.models.images import restore_whole
from edgeens.models.restormer import Restormer
from edgeens.restore import eager_restorer, restore_array


def test_large_test_images_are_scored_in_blended_tiles_small_ones_whole() -> None:
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    rng = np.random.default_rng(0)
    small = rng.random((64, 80, 3)).astype(np.float32)
    large = rng.random((600, 720, 3)).astype(np.float32)  # 432,000 pixels: over the catalogue's 768x512
    assert large.shape[0] * large.shape[1] > WHOLE_PIXELS >= small.shape[0] * small.shape[1]
    clean_small, clean_large = small * 0.9, large * 0.9
    whole = psnr(restore_whole(model, small), clean_small)
    assert score(model, [("small", small, clean_small)])[0] == whole
    tiled = psnr(restore_array(eager_restorer(model, "m"), large, 256, SCORE_OVERLAP), clean_large)
    in_one_piece = psnr(restore_whole(model, large), clean_large)
    assert score(model, [("large", large, clean_large)], tile=256)[0] == tiled != in_one_piece
