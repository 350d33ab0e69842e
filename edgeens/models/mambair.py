"""MambaIR's state-space blocks and its U-Net (Guo et al., ECCV 2024), module for module and key for key as the
official `realDenoising/basicsr/models/archs/mambairunet_arch.py`, with the scan from `edgeens.models.scan`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from edgeens.models.checkpoint import CheckpointError, count_blocks, load_state_dict, load_strict, require
from edgeens.models.scan import ScanImpl, selective_scan
from edgeens.models.unet import LEVEL_STAGES, UNet


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last (channel) axis; exported as ops XNNPACK delegates (the fused layer norm runs on
    ExecuTorch's portable kernels and splits the graph around each of the three norms in a block)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__(dim, eps=eps)
        # Export form only (not in the state_dict): the channel mean as a linear map.
        self.register_buffer("channel_mean", torch.full((1, dim), 1.0 / dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.compiler.is_exporting():
            return super().forward(x)
        centred = x - F.linear(x, self.channel_mean)
        variance = F.linear(centred * centred, self.channel_mean)
        return centred / torch.sqrt(variance + self.eps) * self.weight + self.bias


class SS2D(nn.Module):
    """2-D selective scan: four scan orders (rows, columns, and both reversed) through one S6 scan each, or with
    `directions=2` (an edgeens knob, not in MambaIR) rows forward and reversed only: each pixel still sees the
    whole image, at half the scan work and without the transposes."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: float = 2.0,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        conv_bias: bool = True,
        bias: bool = False,
        directions: int = 4,
    ) -> None:
        super().__init__()
        if directions not in (2, 4):
            raise ValueError(f"SS2D scans in 4 directions (MambaIR) or 2 (rows both ways), not {directions}")
        self.d_model, self.d_state, self.directions = d_model, d_state, directions
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan_impl: ScanImpl = "auto"
        di, r, n, k = self.d_inner, self.dt_rank, d_state, directions

        # Registration order fixes the state_dict order: own Parameters first, then submodules.
        bound = 1 / math.sqrt(di)  # PyTorch's default Linear init, as the deleted x_proj Linears had
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, di).uniform_(-bound, bound))
        dt_std = r**-0.5 * dt_scale
        self.dt_projs_weight = nn.Parameter(torch.empty(k, di, r).uniform_(-dt_std, dt_std))
        dt = torch.exp(torch.rand(k, di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus: softplus(bias) = dt
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(k * di, 1))
        self.Ds = nn.Parameter(torch.ones(k * di))
        self.in_proj = nn.Linear(d_model, di * 2, bias=bias)
        self.conv2d = nn.Conv2d(di, di, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=di, bias=conv_bias)
        self.out_norm = LayerNorm(di)
        self.out_proj = nn.Linear(di, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) channels-last -> (B, H, W, C)."""
        # Written with slices, reshapes and 3-D batched matmuls (not chunk/split, select/stack or broadcasting
        # matmuls), which export to ops XNNPACK delegates; the two flips are the only ops it leaves out.
        b, h, w, _ = x.shape
        length, di, r, n = h * w, self.d_inner, self.dt_rank, self.d_state
        xz = self.in_proj(x)
        x, z = xz[..., :di], xz[..., di:]
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))  # (B, Di, H, W)

        k = self.directions
        orders = x.reshape(b, 1, di, length)
        if k == 4:
            orders = torch.cat([orders, x.transpose(2, 3).reshape(b, 1, di, length)], dim=1)
        xs = torch.cat([orders, orders.flip(-1)], dim=1)  # (B, K, Di, L): row, [col,] row reversed[, col reversed]

        x_dbl = _per_direction(self.x_proj_weight, xs)  # (B, K, R + 2N, L)
        dts, Bs, Cs = x_dbl[:, :, :r], x_dbl[:, :, r : r + n], x_dbl[:, :, r + n :]
        dts = _per_direction(self.dt_projs_weight, dts)  # (B, K, Di, L); the bias goes to the scan
        # The scan computes in float32 whatever the model's dtype (selective_scan casts only when needed).
        y = selective_scan(
            xs.reshape(b, -1, length),
            dts.reshape(b, -1, length),
            -torch.exp(self.A_logs),
            Bs,
            Cs,
            self.Ds,
            delta_bias=self.dt_projs_bias.reshape(-1),
            delta_softplus=True,
            impl=self.scan_impl,
        ).reshape(b, k, self.d_inner, length)

        if k == 2:
            y = y[:, 0:1] + y[:, 1:2].flip(-1)
        else:
            reverse = y[:, 2:4].flip(-1)
            y_cols = torch.cat([y[:, 1:2], reverse[:, 1:2]], dim=1).reshape(b, 2, di, w, h).transpose(3, 4)
            y_cols = y_cols.reshape(b, 2, di, length)
            y = y[:, 0:1] + reverse[:, 0:1] + y_cols[:, 0:1] + y_cols[:, 1:2]  # adds, not sum(1): XNNPACK lowers adds
        y = self.out_norm(y.reshape(b, di, length).transpose(1, 2).reshape(b, h, w, di))
        return self.out_proj(y * F.silu(z))


def _per_direction(weight: Tensor, x: Tensor) -> Tensor:
    """weight (K, O, I) applied to x (B, K, I, L) per direction k -> (B, K, O, L), as one 3-D batched matmul."""
    b, k, i, length = x.shape
    if b == 1:
        return torch.bmm(weight, x.reshape(k, i, length)).reshape(1, k, -1, length)
    stacked = x.permute(1, 2, 0, 3).reshape(k, i, b * length)
    return torch.bmm(weight, stacked).reshape(k, -1, b, length).permute(2, 0, 1, 3)


class ChannelAttention(nn.Module):
    def __init__(self, num_feat: int, squeeze_factor: int = 30) -> None:
        super().__init__()
        # Officially num_feat // squeeze_factor, which is 0 (a crash at run time) below 30 channels; keep one.
        squeezed = max(1, num_feat // squeeze_factor)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, squeezed, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.compiler.is_exporting():
            return x * self.attention(x)
        pooled = x.mean(dim=(2, 3), keepdim=True)  # adaptive pooling to 1x1 exports as as_strided (not delegated)
        for layer in self.attention[1:]:
            pooled = layer(pooled)
        return x * pooled


class CAB(nn.Module):
    """Channel-attention block: conv, GELU, conv, channel attention (NCHW)."""

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at rate 0 and in eval)."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


class VSSBlock(nn.Module):
    """Residual state-space block: x*s1 + SS2D(LN(x)), then x*s2 + CAB(LN(x)), on (B, H, W, C) tensors."""

    def __init__(
        self, hidden_dim: int, drop_path: float = 0.0, d_state: int = 16, expand: float = 2.0, directions: int = 4
    ) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(hidden_dim)  # MambaIR passes plain nn.LayerNorm: eps 1e-5
        self.self_attention = SS2D(d_model=hidden_dim, d_state=d_state, expand=expand, directions=directions)
        self.drop_path = DropPath(drop_path)
        self.skip_scale = nn.Parameter(torch.ones(hidden_dim))
        self.conv_blk = CAB(hidden_dim)
        self.ln_2 = LayerNorm(hidden_dim)
        self.skip_scale2 = nn.Parameter(torch.ones(hidden_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(x)))
        return x * self.skip_scale2 + self.conv_blk(self.ln_2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class VSSStage(nn.ModuleList):
    """A stack of VSSBlocks that takes and returns NCHW feature maps (keys `<stage>.<i>.…` as officially)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        x = x.permute(0, 2, 3, 1)
        for block in self:
            x = block(x)
        return x.permute(0, 3, 1, 2)


@dataclass
class MambaIRUNetConfig:
    """Constructor arguments of the official `MambaIRUNet`, plus `d_state` (officially fixed at 16)."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: list[int] = field(default_factory=lambda: [4, 6, 6, 8])
    mlp_ratio: float = 2.0
    num_refinement_blocks: int = 4
    drop_path_rate: float = 0.0
    bias: bool = False
    dual_pixel_task: bool = False
    d_state: int = 16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TASK_CONFIGS: dict[str, MambaIRUNetConfig] = {
    "default": MambaIRUNetConfig(),
    "real_denoising": MambaIRUNetConfig(mlp_ratio=1.5),  # RealDN_MambaIR.pth
}


class MambaIRUNet(UNet):
    """MambaIR's U-Net: Restormer's layout with a stack of VSSBlocks in every stage."""

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: list[int] | tuple[int, ...] = (4, 6, 6, 8),
        mlp_ratio: float = 2.0,
        num_refinement_blocks: int = 4,
        drop_path_rate: float = 0.0,
        bias: bool = False,
        dual_pixel_task: bool = False,
        d_state: int = 16,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4:
            raise ValueError(f"MambaIRUNet needs 4 levels, got num_blocks={list(num_blocks)}")
        self.config = MambaIRUNetConfig(
            inp_channels,
            out_channels,
            dim,
            list(num_blocks),
            mlp_ratio,
            num_refinement_blocks,
            drop_path_rate,
            bias,
            dual_pixel_task,
            d_state,
        )
        depths = [*num_blocks, num_blocks[2], num_blocks[1], num_blocks[0], num_refinement_blocks]
        rates = iter(torch.linspace(0, drop_path_rate, sum(depths)).tolist())  # stochastic depth, block by block

        def stage(width: int, depth: int, level: int) -> VSSStage:
            return VSSStage([VSSBlock(width, next(rates), d_state, mlp_ratio) for _ in range(depth)])

        # dual_pixel_task: the official module applies skip_conv to tokens and crashes; here it runs on NCHW.
        self.build_unet(
            inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, bias, dual_pixel_task, stage
        )

    def set_scan_impl(self, impl: ScanImpl) -> MambaIRUNet:
        """Choose the selective-scan implementation of every SS2D (``auto``, ``reference``, ``chunked``, ``cuda``)."""
        for module in self.modules():
            if isinstance(module, SS2D):
                module.scan_impl = impl
        return self

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MambaIRUNet:
        if name not in TASK_CONFIGS:
            raise ValueError(f"unknown MambaIRUNet preset {name!r}; choose one of: {', '.join(TASK_CONFIGS)}")
        return cls(**{**TASK_CONFIGS[name].to_dict(), **overrides})

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> MambaIRUNet:
        """Load an official or edgeens checkpoint; the whole configuration is read off the state_dict."""
        state = load_state_dict(path)
        config = infer_mambairunet_config(state, source=str(path))
        model = cls(**config.to_dict())
        load_strict(model, state, source=str(path), config=config.to_dict())
        return model.eval()


def infer_mambairunet_config(state: dict[str, Tensor], source: str = "state_dict") -> MambaIRUNetConfig:
    """Recover every `MambaIRUNet` constructor argument from a state_dict alone."""
    embed = require(state, "patch_embed.proj.weight", source, "MambaIRUNet")
    if "encoder_level1.0.attn.temperature" in state:
        raise CheckpointError(
            f"{source} holds a Restormer (its blocks have 'attn.temperature' keys), not a MambaIRUNet; "
            "edgeens teacher --checkpoint, compile, restore and bench take it as it is (Restormer.from_checkpoint "
            "in Python)"
        )
    in_proj = require(state, "encoder_level1.0.self_attention.in_proj.weight", source, "MambaIRUNet")
    dim, inp_channels = embed.shape[0], embed.shape[1]

    num_blocks = [count_blocks(state, name) for name in LEVEL_STAGES]
    if min(num_blocks) == 0:
        raise CheckpointError(f"{source}: every MambaIRUNet level needs at least one block, found {num_blocks}")
    return MambaIRUNetConfig(
        inp_channels=inp_channels,
        out_channels=require(state, "output.weight", source, "MambaIRUNet").shape[0],
        dim=dim,
        num_blocks=num_blocks,
        mlp_ratio=in_proj.shape[0] / 2 / dim,
        num_refinement_blocks=count_blocks(state, "refinement"),
        bias="output.bias" in state,
        dual_pixel_task="skip_conv.weight" in state,
        d_state=state["encoder_level1.0.self_attention.A_logs"].shape[1],
    )
