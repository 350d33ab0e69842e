"""Quantization-aware fine-tuning (PT2E QAT): the model's weights are fine-tuned on the task's training crops with
w8a8 fake quantization in the forward pass (XNNPACK's quantizer in its QAT form), so that they learn to live with
int8 rounding; then they go back into the float model, which post-training quantization (edgeens.compile.quantize)
calibrates at the deployment size.

Training runs on small fixed-size crops (torch.export specialises the graph to one shape), and only the weights
leave it: the activation ranges are calibrated again for the program's own input size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeens.compile.quantize import QUANTIZE_SCOPES, xnnpack_quantizer
from edgeens.data.task import TaskData


@dataclass(frozen=True)
class QATRecipe:
    """Quantization-aware fine-tuning: a short, gentle continuation of training (the float weights are already
    good; a large step would lose more than rounding does)."""

    iterations: int = 300
    patch: int = 64
    batch: int = 4
    lr: float = 2e-5
    seed: int = 0
    threshold_db: float = 0.3  # run only when post-training w8a8 loses more than this on the test photos
    scope: str = "conv"  # the quantizer's scope, as the program's (edgeens.compile.quantize.QUANTIZE_SCOPES)

    def check(self) -> None:
        if self.iterations < 1 or self.batch < 1:
            raise ValueError(f"QAT needs at least one iteration and one crop per batch, got {self}")
        if self.patch < 16 or self.patch % 8:
            raise ValueError(f"QAT patches must be a multiple of 8 and at least 16 px, got {self.patch}")
        if self.scope not in QUANTIZE_SCOPES:
            raise ValueError(f"unknown QAT scope {self.scope!r}; choose one of: {', '.join(QUANTIZE_SCOPES)}")


def quantization_aware_finetune(
    model: nn.Module,
    task: TaskData,
    recipe: QATRecipe = QATRecipe(),
    say: Callable[[str], None] = print,
) -> nn.Module:
    """A copy of `model` whose weights were fine-tuned under w8a8 fake quantization (L1 to the clean crops)."""
    from torchao.quantization.pt2e import move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    recipe.check()
    torch.manual_seed(recipe.seed)
    float_model = copy.deepcopy(model).eval()
    example = torch.zeros(recipe.batch, 3, recipe.patch, recipe.patch)
    graph = torch.export.export(float_model, (example,)).module()
    prepared = prepare_qat_pt2e(graph, xnnpack_quantizer(recipe.scope, qat=True))
    move_exported_model_to_train(prepared)
    names = set(float_model.state_dict())
    trained = [p for name, p in prepared.named_parameters() if name in names]
    if not trained:
        raise RuntimeError("the QAT graph holds none of the model's weights under their names; nothing to train")
    optimizer = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=0.0)
    pairs = task.training()
    rng = np.random.default_rng(recipe.seed)
    losses = []
    for iteration in range(1, recipe.iterations + 1):
        lq, gt = pairs.sample(recipe.patch, recipe.batch, rng)
        loss = torch.nn.functional.l1_loss(prepared(torch.from_numpy(lq)), torch.from_numpy(gt))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if iteration % max(1, recipe.iterations // 10) == 0:
            say(f"QAT iteration {iteration}/{recipe.iterations}: L1 {np.mean(losses[-50:]):.5f}")
    state = {name: value.detach().clone() for name, value in prepared.state_dict().items() if name in names}
    missing = names - set(state)
    if missing:
        raise RuntimeError(f"the QAT graph lost weights {sorted(missing)[:3]}...; cannot return them to the model")
    float_model.load_state_dict(state)
    return float_model.eval()
