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


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(32), "a PNG image"),
        (b"\xff\xd8\xff\xe0" + bytes(32), "a JPEG image"),
        (b"hello, this is not a checkpoint at all", "it starts with b'hell'"),
        (b'{"programs": {}}', "a JSON file"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_called_what_it_is(tmp_path, content: bytes, named: str) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        Restormer.from_checkpoint(path)
    assert "is not a checkpoint" in str(caught.value) and named in str(caught.value)
    assert "Python objects besides tensors" not in str(caught.value)


def test_a_hybrid_given_as_a_teacher_is_named_as_a_hybrid(tmp_path) -> None:
    from edgeens.models.hybrid import HybridUNet

    torch.manual_seed(0)
    teacher = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
    hybrid = HybridUNet(teacher.config, "R-R-R-M1-R-R-R-R")
    hybrid.save(tmp_path / "hybrid.safetensors")
    with pytest.raises(CheckpointError, match="is an ENS hybrid.*give the teacher checkpoint"):
        Restormer.from_checkpoint(tmp_path / "hybrid.safetensors")
    assert isinstance(load_model(tmp_path / "hybrid.safetensors"), HybridUNet)


def test_a_program_renamed_safetensors_is_called_what_it_is_not_truncated(tmp_path) -> None:
    from edgeens.models.checkpoint import CheckpointError, load_state_dict

    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(b"\x1c\x00\x00\x00ET12" + bytes(64))  # an ExecuTorch flatbuffer's first bytes
    with pytest.raises(CheckpointError, match=r"model.safetensors is an ExecuTorch program \(.pte\), not safetensors"):
        load_state_dict(renamed)
