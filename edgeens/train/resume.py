"""Resumable training state: model, optimizer, step and random generators in one atomically written file,
loadable with `weights_only=True` (tensors, numbers and strings only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeens.errors import EdgeensError
from edgeens.files import atomic_path


class DamagedCheckpointError(EdgeensError):
    """A resumable checkpoint that cannot be read back."""


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
    """Restore what `save_training_state` wrote; returns (step, extra). A file that cannot be read back (truncated,
    overwritten, not a checkpoint) is a DamagedCheckpointError naming it and the way out."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
            raise ValueError("it holds no training state")
    # Arbitrary bytes make the unpickler fail in arbitrary ways (an IndexError on one random file in twenty): any
    # failure to read the file back means it is damaged.
    except Exception as err:  # noqa: BLE001
        if isinstance(err, OSError) and not path.is_file():
            raise
        why = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DamagedCheckpointError(
            f"{path} is damaged ({why}): it cannot be resumed from. Delete it to start this training again from its "
            "first iteration (the folder's other files stay)"
        ) from None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), json.loads(state["extra"])
