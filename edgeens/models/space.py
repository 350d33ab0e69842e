"""The search space: Restormer's 8 stages in data-flow order, the choices at each, and architecture strings.

An architecture is one token per stage: `R` keeps the teacher's Restormer stack; any other token is a surrogate
family's letter and a block count, e.g. `M4` (a MambaIR stack of 4 blocks at the paper's settings) or `G1` (one
gated-convolution block). A family is a block constructor with fixed knobs (`Family`); which families a space
offers is part of the space (and of the block pool's manifest), never guessed from a letter. A stage of n teacher
blocks offers R and, per family, stacks of n, n-2, ... blocks down to 2 (1 for odd n; families marked `shallow`
also offer a single block). Strings read `R-M2-M4-R-M6-R-M2-R`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import product

from edgeens.errors import EdgeensError
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
# Block kinds (constructors in edgeens.models.surrogates) and the knobs each takes.
BLOCK_KINDS = {"mambair": ("d_state", "directions", "expand"), "gated_conv": ("dw_expand", "ffn_expand")}


class ArchitectureError(EdgeensError):
    """An architecture string that does not fit the space, with the offending token named."""


@dataclass(frozen=True)
class Family:
    """A kind of surrogate block with its knobs fixed: `letter` starts its tokens (`G2`), `block` names the
    constructor (`mambair`: MambaIR's VSSBlock; `gated_conv`: NAFNet's block), `knobs` are its arguments."""

    letter: str
    block: str
    knobs: tuple[tuple[str, float], ...] = ()
    shallow: bool = False  # also offer a one-block stack at every stage

    def __post_init__(self) -> None:
        if len(self.letter) != 1 or not self.letter.isalpha() or self.letter.upper() in (RESTORMER, "-"):
            raise ArchitectureError(f"a family letter is one letter other than R, got {self.letter!r}")
        if self.block not in BLOCK_KINDS:
            raise ArchitectureError(f"unknown block kind {self.block!r}; choose one of {', '.join(BLOCK_KINDS)}")
        unknown = [name for name, _ in self.knobs if name not in BLOCK_KINDS[self.block]]
        if unknown:
            raise ArchitectureError(
                f"family {self.letter}: {self.block} has no knob {', '.join(unknown)}; its knobs are "
                + ", ".join(BLOCK_KINDS[self.block])
            )

    def depths(self, teacher_depth: int) -> tuple[int, ...]:
        depths = tuple(range(teacher_depth, 0, -2))
        return (*depths, 1) if self.shallow and depths[-1] != 1 else depths

    @property
    def settings(self) -> dict[str, float]:
        return dict(self.knobs)

    def to_dict(self) -> dict[str, object]:
        return {"block": self.block, "knobs": self.settings, "shallow": self.shallow}

    @classmethod
    def from_dict(cls, letter: str, data: dict) -> Family:
        return cls(letter, data["block"], tuple(sorted(data.get("knobs", {}).items())), bool(data.get("shallow")))


# The built-in families. M is the paper's surrogate; L and S are lighter MambaIR configurations (smaller state,
# no expansion, fewer scan directions: the scan's work scales with all three); G has no scan at all.
FAMILIES: dict[str, Family] = {
    "M": Family("M", "mambair", (("d_state", 16), ("directions", 4), ("expand", 2.0))),
    "L": Family("L", "mambair", (("d_state", 8), ("directions", 4), ("expand", 1.0))),
    "S": Family("S", "mambair", (("d_state", 4), ("directions", 2), ("expand", 1.0))),
    "G": Family("G", "gated_conv", (("dw_expand", 2), ("ffn_expand", 2)), shallow=True),
}
PAPER_FAMILIES = (FAMILIES["M"],)
# What distill, profile and run offer unless told otherwise: the paper's MambaIR, the lightest MambaIR and the
# scan-free gated convolution, so the calibrated search can pick whatever is fast on the device at hand.
DEFAULT_FAMILIES = "M,S,G"


def parse_families(text: str) -> tuple[Family, ...]:
    """`'M,S,G'` -> the built-in families, in that order; a custom one is `X=mambair:d_state=2,directions=2`
    (separate families with `;` when any has knobs)."""
    parts = [p.strip() for p in (text.split(";") if "=" in text else text.split(",")) if p.strip()]
    if not parts:
        raise ArchitectureError("no surrogate family given; e.g. --families M,S,G")
    families: list[Family] = []
    for part in parts:
        letter, _, definition = part.partition("=")
        letter = letter.strip().upper()
        if "," in letter or ";" in letter:
            raise ArchitectureError(
                f"cannot read the families {text!r}: separate them with ',' when all are built-in letters "
                "(M,S,G), with ';' when any is defined with knobs (M;X=mambair:d_state=2)"
            )
        if not definition:
            if letter not in FAMILIES:
                raise ArchitectureError(
                    f"unknown surrogate family {letter!r}; built-in: "
                    + ", ".join(f"{k} ({f.block} {f.settings})" for k, f in FAMILIES.items())
                    + "; define one as X=mambair:d_state=4,expand=1,directions=2"
                )
            families.append(FAMILIES[letter])
            continue
        block, _, knob_text = definition.partition(":")
        knobs: dict[str, float] = {}
        for item in filter(None, (k.strip() for k in knob_text.split(","))):
            name, _, value = item.partition("=")
            try:
                knobs[name.strip()] = float(value) if "." in value else int(value)
            except ValueError:
                raise ArchitectureError(f"family {letter}: knob {item!r} is not name=number") from None
        families.append(
            Family(letter, block.strip(), tuple(sorted(knobs.items())), shallow=block.strip() == "gated_conv")
        )
    letters = [f.letter for f in families]
    if len(set(letters)) != len(letters):
        raise ArchitectureError(f"family letters must be distinct, got {', '.join(letters)}")
    return tuple(families)


def families_to_dict(families: tuple[Family, ...]) -> dict[str, dict]:
    return {f.letter: f.to_dict() for f in families}


def merge_families(known: dict[str, dict], added: tuple[Family, ...], where: str) -> dict[str, dict]:
    """`known` family definitions plus `added`; a letter that `where` already defines with other knobs is refused
    (a pool, or a folder of programs, must not mix two meanings of one letter)."""
    merged = dict(known)
    for letter, definition in families_to_dict(added).items():
        if merged.get(letter, definition) != definition:
            raise ArchitectureError(
                f"{where} defines family {letter} as {merged[letter]}, not {definition}; give the new family another "
                "letter (e.g. --families 'X=mambair:d_state=4') or use another folder"
            )
        merged[letter] = definition
    return merged


def legacy_families(surrogate_config: dict | None) -> tuple[Family, ...]:
    """The family a format-1 pool or hybrid file names by its `surrogate_config` (d_state, expand): MambaIR with
    MambaIR's four scan directions (what the format upgrades turn into a named family)."""
    knobs = {"d_state": 16, "directions": 4, "expand": 2.0, **(surrogate_config or {})}
    return (Family(MAMBA, "mambair", tuple(sorted(knobs.items()))),)


def families_from_dict(data: dict[str, dict] | None) -> tuple[Family, ...]:
    """The inverse of families_to_dict; None or empty is the paper's M."""
    if not data:
        return PAPER_FAMILIES
    return tuple(Family.from_dict(letter, d) for letter, d in data.items())


def split_token(token: str) -> tuple[str, int]:
    """`'G2'` -> ('G', 2): a surrogate token's family letter and block count."""
    return token[0], int(token[1:])


@dataclass(frozen=True)
class Stage:
    """One searchable stage: where it sits in the U-Net and what the teacher has there."""

    name: str
    level: int  # 1 (full resolution) .. 4 (latent, 1/8 resolution)
    width: int  # channels of the stage's feature map
    heads: int  # attention heads of the teacher's blocks
    depth: int  # number of teacher blocks

    families: tuple[Family, ...] = PAPER_FAMILIES

    @property
    def module(self) -> str:
        return STAGE_MODULES[self.name]

    @property
    def choices(self) -> tuple[str, ...]:
        """`R`, then per family its stacks of depth, depth - 2, ... blocks (see Family.depths)."""
        return (RESTORMER, *(f"{f.letter}{n}" for f in self.families for n in f.depths(self.depth)))


@dataclass(frozen=True)
class SearchSpace:
    """The 8 stages of a Restormer teacher configuration, the surrogate families, and the architectures over them."""

    teacher: RestormerConfig
    families: tuple[Family, ...] = PAPER_FAMILIES

    def __post_init__(self) -> None:
        letters = [f.letter for f in self.families]
        if not letters or len(set(letters)) != len(letters):
            raise ArchitectureError(f"a space needs one or more families with distinct letters, got {letters}")

    def family(self, letter: str) -> Family:
        return next(f for f in self.families if f.letter == letter)

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        t = self.teacher
        depths = (*t.num_blocks, t.num_blocks[2], t.num_blocks[1], t.num_blocks[0], t.num_refinement_blocks)
        levels = (1, 2, 3, 4, 3, 2, 1, 1)
        # Decoder 1 and the refinement run on the concatenated skip: twice the level-1 width, level-1 heads.
        widths = tuple(t.dim * 2 ** (lv - 1) for lv in levels[:6]) + (t.dim * 2, t.dim * 2)
        heads = tuple(t.heads[lv - 1] for lv in levels)
        return tuple(
            Stage(name, lv, w, h, n, self.families)
            for name, lv, w, h, n in zip(STAGE_NAMES, levels, widths, heads, depths, strict=True)
        )

    @property
    def size(self) -> int:
        """Number of architectures."""
        return math.prod(len(stage.choices) for stage in self.stages)

    def surrogates(self) -> list[tuple[Stage, str]]:
        """Every (stage, surrogate token) that the block pool must hold."""
        return [(stage, choice) for stage in self.stages for choice in stage.choices if choice != RESTORMER]

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
                    f"({stage.depth} teacher blocks, families {''.join(f.letter for f in self.families)}); "
                    f"choose one of {', '.join(stage.choices)}"
                )
        return tokens

    @property
    def teacher_only(self) -> tuple[str, ...]:
        return tuple(RESTORMER for _ in self.stages)

    @property
    def mamba_only(self) -> tuple[str, ...]:
        """Every stage as its first family's full-depth stack (the paper's MambaIR-only network for family M)."""
        return tuple(stage.choices[1] for stage in self.stages)

    def family_only(self, letter: str) -> tuple[str, ...]:
        """Every stage as family `letter`'s full-depth stack."""
        return tuple(next(c for c in stage.choices if c[0] == letter) for stage in self.stages)

    def with_families(self, families: tuple[Family, ...]) -> SearchSpace:
        return SearchSpace(self.teacher, families)

    @property
    def name_suffix(self) -> str:
        """'' for the paper's families, else e.g. '+MSG' (file names of tables and exports tell spaces apart)."""
        return "" if self.families == PAPER_FAMILIES else "+" + "".join(f.letter for f in self.families)


def format_architecture(tokens: tuple[str, ...] | list[str]) -> str:
    """('R', 'M2', ...) -> 'R-M2-...' (the inverse of SearchSpace.parse)."""
    return "-".join(tokens)


PRESETS: dict[str, RestormerConfig] = {
    # The paper's backbone: 22 surrogates, 34,560 architectures.
    "paper": RestormerConfig(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4, heads=[1, 2, 4, 8]),
    # Narrow and shallow enough to train on 2 CPU cores in minutes; 9 surrogates, 384 architectures.
    "tiny": RestormerConfig(dim=16, num_blocks=[2, 2, 2, 4], num_refinement_blocks=2, heads=[1, 2, 4, 8]),
}


def preset_space(name: str, families: tuple[Family, ...] = PAPER_FAMILIES) -> SearchSpace:
    if name not in PRESETS:
        raise ValueError(f"unknown search-space preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return SearchSpace(PRESETS[name], families)
