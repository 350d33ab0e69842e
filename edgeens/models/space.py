"""The search space: Restormer's 8 stages in data-flow order, the choices at each, and architecture strings.

An architecture is one token per stage: `R` keeps the teacher's Restormer stack, `M4` is a MambaIR stack of 4
blocks. A stage of n teacher blocks offers R and M{n}, M{n-2}, ..., down to M2 (M1 for odd n).
Strings read `R-M2-M4-R-M6-R-M2-R`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import product

from edgeens.models.restormer import RestormerConfig

STAGE_NAMES = ("encoder1", "encoder2", "encoder3", "latent", "decoder3", "decoder2", "decoder1", "refinement")
# The attribute of each stage in the official Restormer (and MambaIRUNet).
STAGE_MODULES = dict(
    zip(
        STAGE_NAMES,
        (
            "encoder_level1",
            "encoder_level2",
            "encoder_level3",
            "latent",
            "decoder_level3",
            "decoder_level2",
            "decoder_level1",
            "refinement",
        ),
        strict=True,
    )
)
RESTORMER = "R"
MAMBA = "M"


class ArchitectureError(ValueError):
    """An architecture string that does not fit the space, with the offending token named."""


@dataclass(frozen=True)
class Stage:
    """One searchable stage: where it sits in the U-Net and what the teacher has there."""

    name: str
    level: int  # 1 (full resolution) .. 4 (latent, 1/8 resolution)
    width: int  # channels of the stage's feature map
    heads: int  # attention heads of the teacher's blocks
    depth: int  # number of teacher blocks

    @property
    def module(self) -> str:
        return STAGE_MODULES[self.name]

    @property
    def choices(self) -> tuple[str, ...]:
        """`R`, then MambaIR stacks of depth, depth - 2, ... blocks, down to 2 (or 1 for odd depths)."""
        return (RESTORMER, *(f"{MAMBA}{n}" for n in range(self.depth, 0, -2)))


@dataclass(frozen=True)
class SearchSpace:
    """The 8 stages of a Restormer teacher configuration and the architectures over them."""

    teacher: RestormerConfig

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        t = self.teacher
        depths = (*t.num_blocks, t.num_blocks[2], t.num_blocks[1], t.num_blocks[0], t.num_refinement_blocks)
        levels = (1, 2, 3, 4, 3, 2, 1, 1)
        # Decoder 1 and the refinement run on the concatenated skip: twice the level-1 width, level-1 heads.
        widths = tuple(t.dim * 2 ** (lv - 1) for lv in levels[:6]) + (t.dim * 2, t.dim * 2)
        heads = tuple(t.heads[lv - 1] for lv in levels)
        return tuple(
            Stage(name, lv, w, h, n)
            for name, lv, w, h, n in zip(STAGE_NAMES, levels, widths, heads, depths, strict=True)
        )

    @property
    def size(self) -> int:
        """Number of architectures."""
        return math.prod(len(stage.choices) for stage in self.stages)

    def surrogates(self) -> list[tuple[Stage, int]]:
        """Every (stage, MambaIR depth) that the block pool must hold."""
        return [(stage, int(choice[1:])) for stage in self.stages for choice in stage.choices if choice != RESTORMER]

    def architectures(self):
        """All architectures as token tuples, in a fixed order (only sensible for small spaces)."""
        return product(*(stage.choices for stage in self.stages))

    def parse(self, text: str) -> tuple[str, ...]:
        """`'R-M2-M4-R-M6-R-M2-R'` -> ('R', 'M2', ...), checked against this space."""
        tokens = tuple(token.strip().upper() for token in text.strip().split("-"))
        if len(tokens) != len(self.stages):
            raise ArchitectureError(
                f"architecture {text!r} has {len(tokens)} tokens; it needs one per stage, {len(self.stages)} in all "
                f"({', '.join(STAGE_NAMES)}), e.g. {format_architecture(self.teacher_only)!r}"
            )
        for stage, token in zip(self.stages, tokens, strict=True):
            if token not in stage.choices:
                raise ArchitectureError(
                    f"architecture {text!r}: token {token!r} is not a choice for stage {stage.name} "
                    f"({stage.depth} teacher blocks); choose one of {', '.join(stage.choices)}"
                )
        return tokens

    @property
    def teacher_only(self) -> tuple[str, ...]:
        return tuple(RESTORMER for _ in self.stages)

    @property
    def mamba_only(self) -> tuple[str, ...]:
        """Every stage as its full-depth MambaIR stack."""
        return tuple(stage.choices[1] for stage in self.stages)


def format_architecture(tokens: tuple[str, ...] | list[str]) -> str:
    """('R', 'M2', ...) -> 'R-M2-...' (the inverse of SearchSpace.parse)."""
    return "-".join(tokens)


PRESETS: dict[str, RestormerConfig] = {
    # The paper's backbone: 22 surrogates, 34,560 architectures.
    "paper": RestormerConfig(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4, heads=[1, 2, 4, 8]),
    # Narrow and shallow enough to train on 2 CPU cores in minutes; 9 surrogates, 384 architectures.
    "tiny": RestormerConfig(dim=16, num_blocks=[2, 2, 2, 4], num_refinement_blocks=2, heads=[1, 2, 4, 8]),
}


def preset_space(name: str) -> SearchSpace:
    if name not in PRESETS:
        raise ValueError(f"unknown search-space preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return SearchSpace(PRESETS[name])
