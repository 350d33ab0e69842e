"""Surrogate stacks: what replaces a Restormer stage, built from a surrogate family (`edgeens.models.space.Family`).

Two block kinds: MambaIR's `VSSBlock` (family M at the paper's settings, lighter ones with a smaller state, no
expansion or two scan directions) and a gated-convolution block after NAFNet (Chen et al., ECCV 2022): depthwise
convolution, a simple gate and channel attention, no scan and no attention, so every op is one XNNPACK delegates.
Every stack takes and returns the teacher stage's NCHW feature map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeens.models.mambair import VSSBlock, VSSStage
from edgeens.models.restormer import LayerNorm
from edgeens.models.space import Family, Stage, split_token


class SimpleGate(nn.Module):
    """NAFNet's activation: split the channels in half and multiply the halves."""

    def forward(self, x: Tensor) -> Tensor:
        half = x.shape[1] // 2
        return x[:, :half] * x[:, half:]  # slices, not chunk: chunk exports as a split XNNPACK leaves out


class GatedConvBlock(nn.Module):
    """NAFNet's block: norm, 1x1 expand, 3x3 depthwise, gate, channel attention, 1x1 project, scaled residual; then
    norm, 1x1 expand, gate, 1x1 project, scaled residual. The residual scales start at zero, so an untrained block is
    the identity (a good start for distilling a stage of residual blocks)."""

    def __init__(self, width: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        inner, ffn = width * dw_expand, width * ffn_expand
        self.norm1 = LayerNorm(width, "WithBias")  # Restormer's channel norm: the same export form
        self.conv1 = nn.Conv2d(width, inner, 1)
        self.conv2 = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.gate = SimpleGate()
        self.sca = nn.Conv2d(inner // 2, inner // 2, 1)  # channel attention on the pooled map
        self.conv3 = nn.Conv2d(inner // 2, width, 1)
        self.norm2 = LayerNorm(width, "WithBias")
        self.conv4 = nn.Conv2d(width, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, width, 1)
        self.beta = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, width, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = y * self.sca(y.mean(dim=(2, 3), keepdim=True))  # mean, not adaptive pooling: it exports as as_strided
        x = x + self.conv3(y) * self.beta
        return x + self.conv5(self.gate(self.conv4(self.norm2(x)))) * self.gamma


class GatedConvStage(nn.Sequential):
    """A stack of GatedConvBlocks on NCHW feature maps."""


def build_surrogate(stage: Stage, token: str, family: Family) -> nn.Module:
    """An untrained stack for `token` (e.g. `G2`) of `family` at `stage`'s width."""
    letter, depth = split_token(token)
    if letter != family.letter:
        raise ValueError(f"token {token!r} is not of family {family.letter}")
    knobs = family.settings
    if family.block == "mambair":
        return VSSStage(
            [
                VSSBlock(
                    stage.width,
                    d_state=int(knobs.get("d_state", 16)),
                    expand=float(knobs.get("expand", 2.0)),
                    directions=int(knobs.get("directions", 4)),
                )
                for _ in range(depth)
            ]
        )
    return GatedConvStage(
        *(
            GatedConvBlock(stage.width, int(knobs.get("dw_expand", 2)), int(knobs.get("ffn_expand", 2)))
            for _ in range(depth)
        )
    )
