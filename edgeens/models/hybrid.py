"""HybridUNet: a teacher Restormer with some of its 8 stages replaced by surrogate stacks (MambaIR, lighter
MambaIR or gated-convolution blocks, see `edgeens.models.surrogates`).

Everything outside the stages (patch embedding, down/upsampling, channel reduction, output) is the teacher's.
A replaced stage takes and returns the teacher's NCHW feature maps, so the Restormer forward pass runs unchanged.
State_dict keys stay those of the teacher (`encoder_level1.0....`), with the surrogate's block keys inside replaced
stages. A hybrid saves as one safetensors file whose metadata holds its architecture string, the teacher
configuration and its surrogate families' knobs, so it loads without any other file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from edgeens.files import NewerFormatError, atomic_path, format_name, upgrade_format
from edgeens.models.checkpoint import CheckpointError, load_strict, safetensors_format
from edgeens.models.restormer import Restormer, RestormerConfig
from edgeens.models.space import (
    PAPER_FAMILIES,
    RESTORMER,
    Family,
    SearchSpace,
    families_from_dict,
    families_to_dict,
    format_architecture,
    legacy_families,
)
from edgeens.models.surrogates import build_surrogate


def _families_named(metadata: dict) -> dict:
    """Version 1 to 2: every file names its families; a version-1 file without them holds MambaIR at the d_state
    and expansion of its `surrogate_config`."""
    if "families" not in metadata:
        knobs = json.loads(metadata.pop("surrogate_config", "{}"))
        metadata["families"] = json.dumps(families_to_dict(legacy_families(knobs)))
    return metadata


UPGRADES = (_families_named,)
FORMAT = format_name("hybrid", UPGRADES)

# A pool: the surrogate stacks, keyed by (stage name, token), e.g. ("encoder1", "G2").
Surrogates = Mapping[tuple[str, str], nn.Module]


def is_hybrid_file(path: str | Path) -> bool:
    """Whether `path` is a safetensors file written by `HybridUNet.save` (False for anything else, unreadable too)."""
    return safetensors_format(path) == FORMAT


class HybridUNet(Restormer):
    """A Restormer whose stages follow `architecture`: `R` keeps the teacher's stack, any other token takes that
    stack from `surrogates` (keyed by (stage name, token)) or, if absent, a freshly initialised one of its family."""

    def __init__(
        self,
        teacher_config: RestormerConfig,
        architecture: str | tuple[str, ...],
        surrogates: Surrogates | None = None,
        families: tuple[Family, ...] | None = None,
    ) -> None:
        super().__init__(**teacher_config.to_dict())
        # Without families named: those of the pool (a BlockPool carries its space), else the paper's MambaIR.
        families = families or getattr(getattr(surrogates, "space", None), "families", PAPER_FAMILIES)
        self.space = SearchSpace(teacher_config, families)
        tokens = self.space.parse(architecture) if isinstance(architecture, str) else architecture
        self.architecture = self.space.parse(format_architecture(tokens))
        surrogates = surrogates or {}
        for stage, token in zip(self.space.stages, self.architecture, strict=True):
            if token == RESTORMER:
                continue
            pooled = surrogates.get((stage.name, token))
            # A copy: training this hybrid must not change the pool that other hybrids are composed from.
            block = (
                copy.deepcopy(pooled)
                if pooled is not None
                else build_surrogate(stage, token, self.space.family(token[0]))
            )
            setattr(self, stage.module, block)

    @property
    def architecture_string(self) -> str:
        return format_architecture(self.architecture)

    @classmethod
    def from_teacher(
        cls,
        teacher: Restormer,
        architecture: str | tuple[str, ...],
        surrogates: Surrogates | None = None,
        families: tuple[Family, ...] | None = None,
    ) -> HybridUNet:
        """Compose a hybrid: every module that stays a Restormer one gets the teacher's weights."""
        hybrid = cls(teacher.config, architecture, surrogates, families)
        replaced = {
            s.module for s, token in zip(hybrid.space.stages, hybrid.architecture, strict=True) if token != RESTORMER
        }
        for name, module in hybrid.named_children():  # surrogates keep their own weights, all else is the teacher's
            if name not in replaced:
                module.load_state_dict(getattr(teacher, name).state_dict(), strict=True)
        return hybrid.train(teacher.training)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> HybridUNet:  # type: ignore[override]
        """Same as `load`: a hybrid file describes itself."""
        return cls.load(path)

    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> HybridUNet:  # type: ignore[override]
        raise TypeError("a HybridUNet is built from a teacher: HybridUNet.from_teacher(teacher, 'R-M2-...')")

    def save(self, path: str | Path) -> None:
        """One safetensors file: weights, plus architecture and teacher configuration in its metadata."""
        metadata = {
            "format": FORMAT,
            "architecture": self.architecture_string,
            "teacher_config": json.dumps(self.config.to_dict()),
            "families": json.dumps(families_to_dict(self.space.families)),
        }
        with atomic_path(path) as tmp:  # never leave a half-written hybrid behind
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path) -> HybridUNet:
        """Load a hybrid written by `save`: no configuration needed."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"hybrid {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
        except Exception as err:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"hybrid {path} is not a readable safetensors file ({err})") from None
        try:
            upgraded = upgrade_format(metadata, "hybrid", UPGRADES, path)
        except NewerFormatError:
            raise
        except (TypeError, ValueError) as err:  # an old file's surrogate_config that is not JSON
            raise CheckpointError(f"{path}: the hybrid's metadata is damaged or was edited ({err}); {REMAKE}") from None
        if upgraded is None:
            raise CheckpointError(
                f"{path} is not an edgeens hybrid (no '{FORMAT}' metadata); give a Restormer or MambaIRUNet "
                "checkpoint where one is asked for, or the best.safetensors of an edgeens finetune"
            )
        metadata = upgraded
        try:
            hybrid = cls(
                RestormerConfig(**json.loads(metadata["teacher_config"])),
                metadata["architecture"],
                families=families_from_dict(json.loads(metadata["families"])),
            )
        except (KeyError, TypeError, ValueError) as err:  # JSON, missing or unknown fields, a bad architecture
            raise CheckpointError(
                f"{path}: the hybrid's metadata is damaged or was edited ({type(err).__name__}: {err}); {REMAKE}"
            ) from None
        try:
            load_strict(hybrid, state, source=str(path), config=None)
        except CheckpointError as err:
            summary = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise CheckpointError(
                f"{path}: the hybrid's metadata is damaged or was edited: it describes a network its weights do not "
                f"fit ({summary[:200]}); {REMAKE}"
            ) from None
        return hybrid.eval()


REMAKE = "make it again: edgeens finetune writes best.safetensors, edgeens compile exports from it"
