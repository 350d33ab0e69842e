from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from edgeens.models import CheckpointError, MambaIRUNet, Restormer, load_model, pad_to_multiple
from tests.conftest import FIXTURES


def test_load_model_recognises_each_architecture() -> None:
    assert isinstance(load_model(FIXTURES / "restormer_small_biasfree.state_dict.safetensors"), Restormer)
    assert isinstance(load_model(FIXTURES / "mambairunet_small.state_dict.safetensors"), MambaIRUNet)


def test_load_model_names_what_it_found_in_an_unknown_checkpoint(tmp_path) -> None:
    save_file({"backbone.conv.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="neither a Restormer"):
        load_model(tmp_path / "other.safetensors")


def test_pad_to_multiple_reflects_bottom_right_and_keeps_the_size() -> None:
    x = torch.arange(2 * 10 * 13, dtype=torch.float32).reshape(1, 2, 10, 13)
    padded, (h, w) = pad_to_multiple(x, 8)
    assert padded.shape == (1, 2, 16, 16) and (h, w) == (10, 13)
    assert torch.equal(padded[..., :10, :13], x)
    assert torch.equal(padded[..., 10, :13], x[..., 8, :])  # reflect: row 10 mirrors row 8
