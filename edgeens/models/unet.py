"""The 4-level U-Net that Restormer and MambaIRUNet share: everything except what runs inside the 8 stages.

Stages take and return NCHW feature maps, so any stack (Restormer blocks, MambaIR blocks) fits any stage.
Modules are registered in the official order, so state_dict keys and their order match the official models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from edgeens.models.images import check_image

LEVEL_STAGES = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
# The 8 stages in data-flow order (the search space's order).
STAGE_ORDER = (*LEVEL_STAGES, "decoder_level3", "decoder_level2", "decoder_level1", "refinement")


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve resolution, double channels: conv to C/2 then pixel-unshuffle."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, stride=1, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double resolution, halve channels: conv to 2C then pixel-shuffle."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, stride=1, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class UNet(nn.Module):
    """Patch embedding, 3 downsamplings, latent, 3 upsamplings with skip concatenation, refinement, output conv,
    and a global residual (or, for dual-pixel input, a skip convolution instead)."""

    config: object  # the subclass's configuration dataclass (has inp_channels)

    def build_unet(
        self,
        inp_channels: int,
        out_channels: int,
        dim: int,
        num_blocks: Sequence[int],
        num_refinement_blocks: int,
        bias: bool,
        dual_pixel_task: bool,
        make_stage: Callable[[int, int, int], nn.Module],
    ) -> None:
        """Register every module; `make_stage(width, depth, level)` builds the 8 stages in data-flow order."""
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = make_stage(dim, num_blocks[0], 1)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = make_stage(dim * 2, num_blocks[1], 2)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = make_stage(dim * 4, num_blocks[2], 3)
        self.down3_4 = Downsample(dim * 4)
        self.latent = make_stage(dim * 8, num_blocks[3], 4)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = make_stage(dim * 4, num_blocks[2], 3)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = make_stage(dim * 2, num_blocks[1], 2)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = make_stage(dim * 2, num_blocks[0], 1)
        self.refinement = make_stage(dim * 2, num_refinement_blocks, 1)
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, inp_img: Tensor) -> Tensor:
        check_image(inp_img, self.config.inp_channels, type(self).__name__)
        inp_enc_level1 = self.patch_embed(inp_img)
        out_enc_level1 = self.encoder_level1(inp_enc_level1)
        out_enc_level2 = self.encoder_level2(self.down1_2(out_enc_level1))
        out_enc_level3 = self.encoder_level3(self.down2_3(out_enc_level2))
        latent = self.latent(self.down3_4(out_enc_level3))

        inp_dec_level3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), out_enc_level3], 1))
        out_dec_level3 = self.decoder_level3(inp_dec_level3)
        inp_dec_level2 = self.reduce_chan_level2(torch.cat([self.up3_2(out_dec_level3), out_enc_level2], 1))
        out_dec_level2 = self.decoder_level2(inp_dec_level2)
        inp_dec_level1 = torch.cat([self.up2_1(out_dec_level2), out_enc_level1], 1)
        out_dec_level1 = self.refinement(self.decoder_level1(inp_dec_level1))

        if self.dual_pixel_task:
            return self.output(out_dec_level1 + self.skip_conv(inp_enc_level1))
        return self.output(out_dec_level1) + inp_img

    # --- the same forward pass, one stage at a time (for search: architectures that share their first stages
    # reuse those stages' outputs). `carry` holds the tensor entering the next stage and the skips still needed.

    def start_stages(self, inp_img: Tensor) -> dict[str, Tensor]:
        """The state before the first stage: the patch embedding (and what the end of the network needs)."""
        check_image(inp_img, self.config.inp_channels, type(self).__name__)
        embedded = self.patch_embed(inp_img)
        return {"x": embedded, "input": inp_img, **({"embedded": embedded} if self.dual_pixel_task else {})}

    def run_stage(self, index: int, carry: dict[str, Tensor], stack: nn.Module | None = None) -> dict[str, Tensor]:
        """Run stage `index` (0 = encoder_level1 ... 7 = refinement; `stack` replaces the model's own) and the
        fixed modules after it, up to the next stage's input."""
        out = (stack if stack is not None else getattr(self, STAGE_ORDER[index]))(carry["x"])
        kept = {k: v for k, v in carry.items() if k != "x"}
        if index == 0:
            return {**kept, "x": self.down1_2(out), "skip1": out}
        if index == 1:
            return {**kept, "x": self.down2_3(out), "skip2": out}
        if index == 2:
            return {**kept, "x": self.down3_4(out), "skip3": out}
        if index == 3:
            skip3 = kept.pop("skip3")
            return {**kept, "x": self.reduce_chan_level3(torch.cat([self.up4_3(out), skip3], 1))}
        if index == 4:
            skip2 = kept.pop("skip2")
            return {**kept, "x": self.reduce_chan_level2(torch.cat([self.up3_2(out), skip2], 1))}
        if index == 5:
            skip1 = kept.pop("skip1")
            return {**kept, "x": torch.cat([self.up2_1(out), skip1], 1)}
        return {**kept, "x": out}

    def finish_stages(self, carry: dict[str, Tensor]) -> Tensor:
        """The output after the last stage: output conv plus the global residual (or the dual-pixel skip)."""
        if self.dual_pixel_task:
            return self.output(carry["x"] + self.skip_conv(carry["embedded"]))
        return self.output(carry["x"]) + carry["input"]
