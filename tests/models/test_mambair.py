from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from edgeens.models.checkpoint import CheckpointError
from edgeens.models.mambair import SS2D, TASK_CONFIGS, MambaIRUNet, VSSBlock, infer_mambairunet_config
from tests.conftest import FIXTURES, key_listing, state_listing


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_official_unet_fixture_loads_strict_and_reproduces_output(impl: str, manifest: dict) -> None:
    model = MambaIRUNet.from_checkpoint(FIXTURES / "mambairunet_small.state_dict.safetensors").set_scan_impl(impl)
    io = load_file(FIXTURES / "mambairunet_small.io.safetensors")
    with torch.no_grad():
        out = model(io["input"])
    assert (out - io["output"]).abs().max().item() <= 1e-5
    expected = {**manifest["mambairunet_small"]["config"], "d_state": 16}
    assert model.config.to_dict() == expected
    assert sum(p.numel() for p in model.parameters()) == manifest["mambairunet_small"]["params"]


def test_official_vssblock_fixture() -> None:
    state = {k.removeprefix("b."): v for k, v in load_file(FIXTURES / "vssblock_c48.state_dict.safetensors").items()}
    block = VSSBlock(48, d_state=16, expand=2.0)
    block.load_state_dict(state, strict=True)
    io = load_file(FIXTURES / "vssblock_c48.io.safetensors")
    with torch.no_grad():
        assert (block.eval()(io["input"]) - io["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("expand", "section"), [(2.0, "expand=2.0"), (1.5, "expand=1.5")])
def test_vssblock_keys_and_parameter_count(expand: float, section: str) -> None:
    keys, total = key_listing("mambair_keys.txt", section)
    block = VSSBlock(48, d_state=16, expand=expand)
    assert state_listing(block) == keys
    assert sum(p.numel() for p in block.parameters()) == total


@pytest.mark.parametrize(
    ("preset", "section"), [("default", "MambaIRUNet() default"), ("real_denoising", "MambaIRUNet(mlp_ratio=1.5)")]
)
def test_paper_size_unet_keys_and_parameter_count(preset: str, section: str) -> None:
    keys, total = key_listing("mambair_keys.txt", section)
    model = MambaIRUNet.from_preset(preset)
    assert state_listing(model) == keys
    assert sum(p.numel() for p in model.parameters()) == total
    assert infer_mambairunet_config(model.state_dict()) == TASK_CONFIGS[preset]


def test_ss2d_initialisation_follows_the_official_recipe() -> None:
    ss2d = SS2D(48, d_state=16, expand=2.0)
    assert torch.allclose(ss2d.A_logs, torch.log(torch.arange(1, 17.0)).expand(384, 16))
    dt = torch.nn.functional.softplus(ss2d.dt_projs_bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    assert ss2d.dt_projs_weight.abs().max() <= 3**-0.5


def test_from_checkpoint_infers_non_default_configuration(tmp_path) -> None:
    model = MambaIRUNet(
        inp_channels=1,
        out_channels=1,
        dim=16,
        num_blocks=[1, 2, 1, 1],
        mlp_ratio=1.5,
        num_refinement_blocks=2,
        d_state=8,
    )
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    loaded = MambaIRUNet.from_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == model.config
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6)


def test_restormer_checkpoint_is_refused_with_the_right_loader() -> None:
    with pytest.raises(CheckpointError, match="Restormer.from_checkpoint"):
        MambaIRUNet.from_checkpoint(FIXTURES / "restormer_small_biasfree.state_dict.safetensors")


def test_missing_block_is_reported(tmp_path) -> None:
    state = load_file(FIXTURES / "mambairunet_small.state_dict.safetensors")
    state = {k: v for k, v in state.items() if not k.startswith("latent.0.conv_blk")}
    save_file(state, tmp_path / "partial.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \(8\): latent\.0\.\* \(8 keys\)"):
        MambaIRUNet.from_checkpoint(tmp_path / "partial.safetensors")


def test_bad_image_is_rejected() -> None:
    model = MambaIRUNet(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 3, 12, 16))
