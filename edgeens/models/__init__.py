"""Checkpoint-exact Restormer and MambaIR, their building blocks, and the selective scan."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeens.models.checkpoint import CheckpointError, load_state_dict
from edgeens.models.images import check_image, pad_to_multiple
from edgeens.models.mambair import MambaIRUNet, MambaIRUNetConfig, VSSBlock
from edgeens.models.restormer import Restormer, RestormerConfig, TransformerBlock
from edgeens.models.scan import selective_scan

__all__ = [
    "CheckpointError",
    "MambaIRUNet",
    "MambaIRUNetConfig",
    "Restormer",
    "RestormerConfig",
    "TransformerBlock",
    "VSSBlock",
    "check_image",
    "load_model",
    "load_state_dict",
    "pad_to_multiple",
    "selective_scan",
]


def load_model(path: str | Path) -> nn.Module:
    """Load a Restormer or MambaIRUNet checkpoint, recognising the architecture from its keys."""
    state = load_state_dict(path)
    if any(".attn.temperature" in k for k in state):
        return Restormer.from_checkpoint(path)
    if any(".self_attention.A_logs" in k for k in state):
        return MambaIRUNet.from_checkpoint(path)
    raise CheckpointError(
        f"{path} is neither a Restormer (no '*.attn.temperature' keys) nor a MambaIRUNet "
        f"(no '*.self_attention.A_logs' keys); its keys start with {', '.join(sorted(state)[:4])}"
    )
