"""Quantization-aware fine-tuning: the weights move under fake quantization and come back into the float model."""

from __future__ import annotations

import pytest
import torch

from edgeens.data.task import TaskData
from edgeens.models import Restormer
from edgeens.train.qat import QATRecipe, quantization_aware_finetune
from tests.data.layouts import make_layout


def micro() -> Restormer:
    torch.manual_seed(0)
    return Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()


def test_qat_trains_every_weight_finitely_and_returns_a_float_model(tmp_path) -> None:
    from edgeens.data.task import DataRequest, open_task

    data = make_layout(tmp_path / "pairs", "restormer", count=10)
    task = open_task(tmp_path / "run", DataRequest(data=data, min_side=32), say=lambda _: None)
    model = micro()
    lines: list[str] = []
    tuned = quantization_aware_finetune(model, task, QATRecipe(iterations=10, patch=32, batch=2, lr=1e-3), lines.append)
    before, after = model.state_dict(), tuned.state_dict()
    assert set(before) == set(after) and type(tuned) is Restormer
    assert all(torch.isfinite(v).all() for v in after.values())
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) >= 0.9 * len(before)  # the weights trained (the scalar temperatures too)
    assert lines and lines[-1].startswith("QAT iteration 10/10")
    assert torch.equal(model.state_dict()["patch_embed.proj.weight"], before["patch_embed.proj.weight"])  # a copy


@pytest.mark.parametrize("recipe", [QATRecipe(iterations=0), QATRecipe(patch=30), QATRecipe(scope="int4")])
def test_a_bad_qat_recipe_is_refused(recipe) -> None:
    with pytest.raises(ValueError, match="QAT|scope"):
        quantization_aware_finetune(micro(), TaskData("catalogue"), recipe)
