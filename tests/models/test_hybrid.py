from __future__ import annotations

import pytest
import torch

from edgeens.models.checkpoint import CheckpointError
from edgeens.models.hybrid import HybridUNet
from edgeens.models.mambair import VSSStage
from edgeens.models.restormer import Restormer
from edgeens.models.space import FAMILIES, PRESETS, ArchitectureError, preset_space
from edgeens.models.surrogates import build_surrogate


@pytest.fixture(scope="module")
def teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(**PRESETS["tiny"].to_dict()).eval()


def test_all_restormer_hybrid_reproduces_the_teacher_exactly(teacher: Restormer) -> None:
    hybrid = HybridUNet.from_teacher(teacher, "R-R-R-R-R-R-R-R")
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(hybrid(x), teacher(x))
    assert list(hybrid.state_dict()) == list(teacher.state_dict())


def test_mixed_hybrid_keeps_teacher_modules_and_uses_given_surrogates(teacher: Restormer) -> None:
    space = preset_space("tiny")
    encoder2 = space.stages[1]
    surrogate = build_surrogate(encoder2, "M2", FAMILIES["M"])
    hybrid = HybridUNet.from_teacher(teacher, "R-M2-R-M2-R-R-R-M2", surrogates={("encoder2", "M2"): surrogate})
    # The pool's weights, in a copy: fine-tuning the hybrid leaves the pool as it was.
    assert hybrid.encoder_level2 is not surrogate
    for key, value in surrogate.state_dict().items():
        assert torch.equal(hybrid.encoder_level2.state_dict()[key], value), key
    assert isinstance(hybrid.latent, VSSStage) and len(hybrid.latent) == 2
    assert isinstance(hybrid.refinement, VSSStage)
    for name in ("patch_embed", "down1_2", "up4_3", "reduce_chan_level3", "output", "encoder_level1", "decoder_level3"):
        for key, value in getattr(hybrid, name).state_dict().items():
            assert torch.equal(value, getattr(teacher, name).state_dict()[key]), f"{name}.{key}"
    with torch.no_grad():
        out = hybrid.eval()(torch.rand(2, 3, 16, 24))
    assert out.shape == (2, 3, 16, 24) and torch.isfinite(out).all()


def test_surrogate_stage_maps_the_teachers_nchw_features(teacher: Restormer) -> None:
    stage = preset_space("tiny").stages[4]  # decoder3: level 3, width 64
    block = build_surrogate(stage, "M2", FAMILIES["M"])
    feature = torch.rand(1, stage.width, 4, 6)
    with torch.no_grad():
        assert block(feature).shape == feature.shape


def test_save_and_load_round_trip(teacher: Restormer, tmp_path) -> None:
    hybrid = HybridUNet.from_teacher(teacher, "M2-R-M2-R-M2-R-R-R").eval()
    hybrid.save(tmp_path / "hybrid.safetensors")
    loaded = HybridUNet.load(tmp_path / "hybrid.safetensors")
    assert loaded.architecture_string == "M2-R-M2-R-M2-R-R-R"
    assert loaded.config == teacher.config
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), hybrid(x))
    assert [p.name for p in tmp_path.iterdir()] == ["hybrid.safetensors"]  # no temporary left beside it


def test_a_version_1_hybrid_file_loads_as_the_current_format(teacher: Restormer, tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from edgeens.models.hybrid import FORMAT

    hybrid = HybridUNet.from_teacher(teacher, "M2-R-R-R-R-R-R-M2").eval()
    hybrid.save(tmp_path / "hybrid.safetensors")
    with safe_open(str(tmp_path / "hybrid.safetensors"), framework="pt") as f:
        metadata, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert metadata["format"] == FORMAT == "edgeens.hybrid.v2"
    # Format 1 without families: MambaIR at the recorded d_state and expansion (four directions).
    old = {k: v for k, v in metadata.items() if k != "families"}
    old |= {"format": "edgeens.hybrid.v1", "surrogate_config": '{"d_state": 16, "expand": 2.0}'}
    save_file(state, str(tmp_path / "v1.safetensors"), metadata=old)
    loaded = HybridUNet.load(tmp_path / "v1.safetensors")
    assert loaded.space.families == hybrid.space.families
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), hybrid(x))
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={**old, "surrogate_config": "{d_state"})
    with pytest.raises(CheckpointError, match="damaged or was edited"):
        HybridUNet.load(tmp_path / "bad.safetensors")


@pytest.mark.slow
def test_paper_preset_mixed_hybrid_forward_at_64x64() -> None:
    teacher = Restormer(**PRESETS["paper"].to_dict()).eval()
    hybrid = HybridUNet.from_teacher(teacher, "R-M2-M4-R-M6-R-M2-R")
    with torch.no_grad():
        out = hybrid(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_bad_architecture_and_files(teacher: Restormer, tmp_path) -> None:
    with pytest.raises(ArchitectureError, match="token 'M4' is not a choice for stage encoder1"):
        HybridUNet.from_teacher(teacher, "M4-R-R-R-R-R-R-R")
    with pytest.raises(CheckpointError, match="not an edgeens hybrid"):
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(1)}, tmp_path / "plain.safetensors")
        HybridUNet.load(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        HybridUNet.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"teacher_config": "{not json"}, "metadata is damaged"),
        ({"teacher_config": '{"dim": 16}'}, "metadata is damaged"),
        ({"architecture": "R-R-Z9-R-R-R-R-R"}, "metadata is damaged"),
        ({"families": "[1, 2"}, "metadata is damaged"),
        (None, "metadata was removed"),
    ],
)
def test_a_hybrid_whose_metadata_was_edited_or_removed_is_named(teacher: Restormer, tmp_path, edit, says) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from edgeens.models import load_model

    HybridUNet.from_teacher(teacher, "R-M2-R-R-R-R-R-R").save(tmp_path / "hybrid.safetensors")
    with safe_open(str(tmp_path / "hybrid.safetensors"), framework="pt") as f:
        metadata, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(state, str(tmp_path / "edited.safetensors"), metadata=None if edit is None else {**metadata, **edit})
    with pytest.raises(CheckpointError, match=says) as caught:
        load_model(tmp_path / "edited.safetensors")
    assert "finetune" in str(caught.value)  # what makes the file again
