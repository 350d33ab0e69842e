"""Restormer (Zamir et al., CVPR 2022), module for module and key for key as the official
`basicsr/models/archs/restormer_arch.py`, so official checkpoints load with strict=True."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from edgeens.models.checkpoint import (
    CheckpointError,
    count_blocks,
    load_state_dict,
    load_strict,
    require,
    safetensors_format,
)
from edgeens.models.unet import LEVEL_STAGES, UNet


def _in_place() -> bool:
    """Eager inference (no autograd, not exporting): element-wise steps may overwrite the tensors they made, which
    saves memory passes (about 5% of a tiny teacher's eager time at 256x256); training and export keep the
    out-of-place form autograd and the exported graph need."""
    return not torch.is_grad_enabled() and not torch.compiler.is_exporting()


class BiasFreeLayerNorm(nn.Module):
    """Channel LayerNorm without mean subtraction in the numerator (the variance is still centred)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(sigma + 1e-5) * self.weight


class WithBiasLayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(-1, keepdim=True)
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    """Normalises each pixel of an NCHW tensor over its channels."""

    def __init__(self, dim: int, layer_norm_type: str) -> None:
        super().__init__()
        self.body = BiasFreeLayerNorm(dim) if layer_norm_type == "BiasFree" else WithBiasLayerNorm(dim)
        # Export form only (not in the state_dict): the channel mean as a 1x1 convolution.
        self.register_buffer("channel_mean", torch.full((1, dim, 1, 1), 1.0 / dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_exporting():
            return self._export_forward(x)
        if x.dtype in (torch.bfloat16, torch.float16):  # under autocast: statistics in fp32, as torch's layer_norm
            return self.forward(x.float()).to(x.dtype)
        # The official (b, h*w, c) view puts the reduced axis at stride h*w, where var runs ~20x slower than two
        # means over dim 1 of the NCHW tensor (a quarter of a tiny teacher's eager time); same values to 3e-7.
        centred = x - x.mean(1, keepdim=True)
        scale = torch.rsqrt((centred * centred).mean(1, keepdim=True) + 1e-5)
        weight = self.body.weight.reshape(1, -1, 1, 1)
        if isinstance(self.body, BiasFreeLayerNorm):
            return x * scale * weight
        bias = self.body.bias.reshape(1, -1, 1, 1)
        if _in_place():  # two fewer full-size tensors: ~30% of this norm's time
            return centred.mul_(scale).mul_(weight).add_(bias)
        return torch.addcmul(bias, centred * scale, weight)

    def _export_forward(self, x: Tensor) -> Tensor:
        """The same normalisation in NCHW with ops XNNPACK delegates (mean/var over the last axis of the
        transposed tensor run on ExecuTorch's portable kernels and split the graph around every norm)."""
        centred = x - F.conv2d(x, self.channel_mean)
        variance = F.conv2d(centred * centred, self.channel_mean)
        weight = self.body.weight.reshape(1, -1, 1, 1)
        if isinstance(self.body, BiasFreeLayerNorm):
            return x / torch.sqrt(variance + 1e-5) * weight
        return centred / torch.sqrt(variance + 1e-5) * weight + self.body.bias.reshape(1, -1, 1, 1)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN)."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dwconv(self.project_in(x))
        half = x.shape[1] // 2  # slices, not chunk: chunk exports as split, which XNNPACK does not delegate
        gate = F.gelu(x[:, :half])
        return self.project_out(gate.mul_(x[:, half:]) if _in_place() else gate * x[:, half:])


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): attention across channels, linear in pixels."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        # As the official forward, written with 3-D batched matmuls and slices (4-D matmuls export with
        # expands and chunk with split, which XNNPACK does not delegate).
        b, c, h, w = x.shape
        heads, per_head = self.num_heads, c // self.num_heads
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = (qkv[:, i * c : (i + 1) * c] for i in range(3))
        q, k = _normalize_pixels(q), _normalize_pixels(k)
        q, k, v = (t.reshape(b * heads, per_head, h * w) for t in (q, k, v))
        attn = torch.bmm(q, k.transpose(1, 2)).reshape(b, heads, per_head, per_head) * self.temperature
        attn = attn.softmax(dim=-1).reshape(b * heads, per_head, per_head)
        return self.project_out(torch.bmm(attn, v).reshape(b, c, h, w))


def _normalize_pixels(x: Tensor) -> Tensor:
    """Each channel of an NCHW map divided by its L2 norm over the pixels (F.normalize over h*w); under export
    the squared norm is a global average pool, the one reduction XNNPACK delegates, instead of pow + sum."""
    b, c, h, w = x.shape
    if not torch.compiler.is_exporting():
        return F.normalize(x.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
    mean_square = (x * x).mean(dim=(2, 3), keepdim=True)
    return x / torch.clamp(torch.sqrt(mean_square * float(h * w)), min=1e-12)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: Tensor) -> Tensor:
        if _in_place():  # each branch's output is a fresh tensor: it takes the residual in place
            x = self.attn(self.norm1(x)).add_(x)
            return self.ffn(self.norm2(x)).add_(x)
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


@dataclass
class RestormerConfig:
    """Constructor arguments of the official `Restormer` (same names, same defaults)."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: list[int] = field(default_factory=lambda: [4, 6, 6, 8])
    num_refinement_blocks: int = 4
    heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    LayerNorm_type: str = "WithBias"  # noqa: N815 (the official argument name)
    dual_pixel_task: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The official task configurations (the `network_g` sections of the Restormer ymls).
TASK_CONFIGS: dict[str, RestormerConfig] = {
    "deraining": RestormerConfig(),
    "motion_deblurring": RestormerConfig(),
    "defocus_single": RestormerConfig(),
    "defocus_dual_pixel": RestormerConfig(inp_channels=6, dual_pixel_task=True),
    "gaussian_color": RestormerConfig(LayerNorm_type="BiasFree"),
    "gaussian_gray": RestormerConfig(inp_channels=1, out_channels=1, LayerNorm_type="BiasFree"),
    "real_denoising": RestormerConfig(LayerNorm_type="BiasFree"),
}


class Restormer(UNet):
    """Restormer: the 4-level U-Net with MDTA + GDFN transformer blocks in every stage."""

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: list[int] | tuple[int, ...] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: list[int] | tuple[int, ...] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # noqa: N803 (the official argument name)
        dual_pixel_task: bool = False,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f"Restormer needs 4 levels: num_blocks={list(num_blocks)}, heads={list(heads)}")
        for level, n_heads in enumerate(heads):
            if (dim * 2**level) % n_heads:
                raise ValueError(
                    f"Restormer level {level + 1} width {dim * 2**level} does not split into {n_heads} heads"
                )
        self.config = RestormerConfig(
            inp_channels,
            out_channels,
            dim,
            list(num_blocks),
            num_refinement_blocks,
            list(heads),
            ffn_expansion_factor,
            bias,
            LayerNorm_type,
            dual_pixel_task,
        )

        def stage(width: int, depth: int, level: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    TransformerBlock(width, heads[level - 1], ffn_expansion_factor, bias, LayerNorm_type)
                    for _ in range(depth)
                ]
            )

        self.build_unet(
            inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, bias, dual_pixel_task, stage
        )

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Restormer:
        """A randomly initialised Restormer with an official task configuration (see TASK_CONFIGS)."""
        if name not in TASK_CONFIGS:
            raise ValueError(f"unknown Restormer preset {name!r}; choose one of: {', '.join(TASK_CONFIGS)}")
        return cls(**{**TASK_CONFIGS[name].to_dict(), **overrides})

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Restormer:
        """Load an official or edgeens checkpoint; the whole configuration is read off the state_dict."""
        _refuse_hybrid(path)
        state = load_state_dict(path)
        config = infer_restormer_config(state, source=str(path))
        model = cls(**config.to_dict())
        load_strict(model, state, source=str(path), config=config.to_dict())
        return model.eval()


def _refuse_hybrid(path: str | Path) -> None:
    """A saved ENS hybrid loads as a Restormer state_dict would not (its stages hold other blocks): name it."""
    if safetensors_format(path).startswith("edgeens.hybrid"):
        raise CheckpointError(
            f"{path} is an ENS hybrid (HybridUNet), not a Restormer: where a teacher is asked for, give the teacher "
            "checkpoint it was built from; the hybrid itself is a model for edgeens compile, restore and bench"
        )


def infer_restormer_config(state: dict[str, Tensor], source: str = "state_dict") -> RestormerConfig:
    """Recover every `Restormer` constructor argument from a state_dict alone."""
    require(state, "patch_embed.proj.weight", source, "Restormer")
    restormer_blocks = any(k.endswith(".attn.temperature") for k in state)
    surrogate_blocks = any(".self_attention." in k or ".sca." in k for k in state)
    if restormer_blocks and surrogate_blocks:
        raise CheckpointError(
            f"{source} holds Restormer blocks and surrogate blocks: an ENS hybrid whose metadata was removed (a "
            "hybrid file carries its architecture in it); make it again: edgeens finetune writes best.safetensors, "
            "edgeens compile exports from it"
        )
    if any(".self_attention." in k for k in state):
        raise CheckpointError(
            f"{source} holds a MambaIRUNet (its blocks have 'self_attention' keys), not a Restormer: a teacher must "
            "be a Restormer; the MambaIRUNet itself is a model for edgeens compile, restore and bench "
            "(MambaIRUNet.from_checkpoint in Python)"
        )
    require(state, "encoder_level1.0.attn.temperature", source, "Restormer")
    embed = state["patch_embed.proj.weight"]
    dim, inp_channels = embed.shape[0], embed.shape[1]
    out_channels = require(state, "output.weight", source, "Restormer").shape[0]

    num_blocks = [count_blocks(state, name) for name in LEVEL_STAGES]
    heads = [
        state[f"{name}.0.attn.temperature"].shape[0] for name in LEVEL_STAGES if f"{name}.0.attn.temperature" in state
    ]
    if len(heads) != 4 or min(num_blocks) == 0:
        raise CheckpointError(f"{source}: every Restormer level needs at least one block, found {num_blocks}")
    ffn = _infer_ffn_factor(state, source)
    return RestormerConfig(
        inp_channels=inp_channels,
        out_channels=out_channels,
        dim=dim,
        num_blocks=num_blocks,
        num_refinement_blocks=count_blocks(state, "refinement"),
        heads=heads,
        ffn_expansion_factor=ffn,
        bias="output.bias" in state,
        LayerNorm_type="WithBias" if "encoder_level1.0.norm1.body.bias" in state else "BiasFree",
        dual_pixel_task="skip_conv.weight" in state,
    )


def _infer_ffn_factor(state: dict[str, Tensor], source: str) -> float:
    """The factor f with int(width * f) == GDFN hidden width at every level: 2.66 if it fits, else a short one."""
    pairs = [
        (state[f"{name}.0.ffn.project_out.weight"].shape[0], state[f"{name}.0.ffn.project_out.weight"].shape[1])
        for name in (*LEVEL_STAGES, "decoder_level1")
        if f"{name}.0.ffn.project_out.weight" in state
    ]

    def fits(f: float) -> bool:
        return all(int(width * f) == hidden for width, hidden in pairs)

    low = max(hidden / width for width, hidden in pairs)
    high = min((hidden + 1) / width for width, hidden in pairs)
    for candidate in (2.66, round(low, 2), round(low, 4), (low + high) / 2):
        if fits(candidate):
            return candidate
    raise CheckpointError(f"{source}: the GDFN widths {pairs} fit no single ffn_expansion_factor")
