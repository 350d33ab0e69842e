"""Checkpoint-exact Restormer and MambaIR, their building blocks, and the selective scan."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeens.models.checkpoint import CheckpointError, load_state_dict
from edgeens.models.images import check_image, pad_to_multiple
from edgeens.models.mambair import MambaIRUNet, MambaIRUNetConfig, VSSBlock
from edgeens.models.restormer import Restormer, RestormerConfig, TransformerBlock
from edgeens.models.scan import selective_scan

# Bumped whenever the torch.export form of a model changes (scan layout, export-only rewrites), so that programs
# lowered from an older form are rebuilt instead of being timed as if they were current.
EXPORT_FORM_VERSION = 3  # 3: export chunks of up to 128 steps (were 32)

__all__ = [
    "EXPORT_FORM_VERSION",
    "CheckpointError",
    "MambaIRUNet",
    "MambaIRUNetConfig",
    "Restormer",
    "RestormerConfig",
    "TransformerBlock",
    "VSSBlock",
    "check_image",
    "load_model",
    "untrained_model",
    "load_state_dict",
    "pad_to_multiple",
    "selective_scan",
]


def load_model(path: str | Path) -> nn.Module:
    """Load a Restormer or MambaIRUNet checkpoint, or a saved HybridUNet, recognising which from the file."""
    from edgeens.models.hybrid import HybridUNet, is_hybrid_file

    if is_hybrid_file(path):
        return HybridUNet.load(path)
    state = load_state_dict(path)
    if any(".attn.temperature" in k for k in state):
        return Restormer.from_checkpoint(path)
    if any(".self_attention.A_logs" in k for k in state):
        return MambaIRUNet.from_checkpoint(path)
    raise CheckpointError(
        f"{path} is neither a Restormer (no '*.attn.temperature' keys) nor a MambaIRUNet "
        f"(no '*.self_attention.A_logs' keys); its keys start with {', '.join(sorted(state)[:4])}"
    )


MODEL_KINDS = ("restormer", "mambairunet", "hybrid")


def untrained_model(kind: str, preset: str, architecture: str | None = None) -> nn.Module:
    """A randomly initialised model at a search-space preset's size (tiny, paper): for export and latency checks,
    where the weights do not matter. A hybrid needs an architecture string over that preset's space. The weights are
    always the same draw (seed 0, the global generator untouched): programs built from a preset by one command are
    recognised, by their weights' hash, by the next."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _untrained_model(kind, preset, architecture)


def _untrained_model(kind: str, preset: str, architecture: str | None) -> nn.Module:
    from edgeens.models.hybrid import HybridUNet
    from edgeens.models.space import PRESETS

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    config = PRESETS[preset]
    if kind == "restormer":
        return Restormer(**config.to_dict()).eval()
    if kind == "mambairunet":
        return MambaIRUNet(
            dim=config.dim, num_blocks=config.num_blocks, num_refinement_blocks=config.num_refinement_blocks
        ).eval()
    if kind == "hybrid":
        if not architecture:
            raise ValueError("an untrained hybrid needs an architecture string, e.g. --arch R-M2-R-R-R-R-M2-R")
        return HybridUNet.from_teacher(Restormer(**config.to_dict()), architecture).eval()
    raise ValueError(f"unknown model kind {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
