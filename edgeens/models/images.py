"""Input checks and padding shared by every U-Net in edgeens."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeens.devices import module_device


def pad_to_multiple(x: Tensor, multiple: int = 8) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad the bottom/right of an NCHW tensor to multiples of `multiple` (Restormer's test scripts);
    returns the padded tensor and the original (H, W) to crop the output back to."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x, (h, w)


def restore_whole(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Restore one (H, W, C) float image in one piece, eagerly: reflect-pad to multiples of 8, run in inference mode
    and eval mode (the model's mode is put back), crop, clamp to [0, 1]. The one eager restoration behind training
    validation, a run's scores and its report; `edgeens.restore` adds tiles and compiled programs on top. It runs
    where the model's parameters are (a GPU too) and returns the image on the CPU."""
    was_training = model.training
    device = module_device(model)
    model.eval()
    try:
        with torch.inference_mode():
            x, (h, w) = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None], 8)
            out = model(x.to(device))[0, :, :h, :w].clamp(0, 1).float()
            return out.cpu().numpy().transpose(1, 2, 0)
    finally:
        model.train(was_training)


def check_image(x: Any, channels: int, model_name: str) -> None:
    """Reject inputs that are not (batch, channels, H, W) tensors with H and W multiples of 8."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{model_name} expects a torch.Tensor of shape (batch, {channels}, H, W), got {type(x).__name__}"
        )
    if x.dim() != 4:
        hint = " (add a batch dimension: x[None])" if x.dim() == 3 else ""
        raise ValueError(
            f"{model_name} expects a 4-D tensor (batch, {channels}, H, W), got shape {tuple(x.shape)}{hint}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{model_name} was built for {channels} input channels but got {x.shape[1]} (shape {tuple(x.shape)}); "
            "convert the image (e.g. gray <-> RGB) or load a checkpoint made for this channel count"
        )
    h, w = x.shape[-2:]
    if h % 8 or w % 8:
        raise ValueError(
            f"{model_name} needs height and width divisible by 8 (three 2x downsamplings), got {h}x{w}; "
            "pad with edgeens.models.pad_to_multiple(x, 8) and crop the output back, as Restormer's test scripts do"
        )
