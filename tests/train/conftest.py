"""A small teacher and its pool on disk, shared by the search and fine-tuning command tests."""

from __future__ import annotations

import pytest
import torch

from edgeens.models.restormer import Restormer
from edgeens.train.distill import DistillRecipe, capture_features, distill_pool

SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A teacher of 1-2 blocks per stage and a pool of all its 8 surrogates (a few distillation steps: the search
    only needs them to exist)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("small-run")
    torch.manual_seed(0)
    teacher = Restormer(**SMALL).eval()
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(folder / "teacher.safetensors"))
    g = torch.Generator().manual_seed(1)
    capture_features(
        teacher, torch.rand(8, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g), folder / "features"
    )
    distill_pool(teacher, folder / "features", folder / "pool", DistillRecipe(steps=2), show_progress=False)
    return folder
