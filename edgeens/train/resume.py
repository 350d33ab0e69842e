"""Resumable training state: model, optimizer, step and random generators in one atomically written file,
loadable with `weights_only=True` (tensors, numbers and strings only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeens.files import atomic_path


def save_training_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, rng: np.random.Generator, **extra: object
) -> None:
    """Write the state after `step`; `extra` holds JSON-serialisable values to restore alongside."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "extra": json.dumps(extra),
    }
    with atomic_path(path) as tmp:  # a kill during the write leaves the previous state intact
        torch.save(state, tmp)


def load_training_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rng: np.random.Generator
) -> tuple[int, dict]:
    """Restore what `save_training_state` wrote; returns (step, extra)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), json.loads(state["extra"])
