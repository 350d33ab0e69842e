from __future__ import annotations

import numpy as np
import torch

from edgeens.models import Restormer
from edgeens.models.images import restore_whole
from edgeens.restore import eager_restorer, restore_array


def test_restore_whole_pads_crops_clamps_and_keeps_the_training_mode() -> None:
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1]).train()
    image = np.random.default_rng(0).random((21, 30, 3), dtype=np.float32)
    out = restore_whole(model, image)
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    assert model.training  # validation during training must not leave the model in eval mode
    # the same restoration as edgeens.restore's untiled eager path, which pads and crops on its own
    np.testing.assert_allclose(out, restore_array(eager_restorer(model, "m"), image, tile=0), atol=1e-6)
