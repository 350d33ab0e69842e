from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from edgeens.models.checkpoint import CheckpointError, load_state_dict
from edgeens.models.restormer import TASK_CONFIGS, Restormer, infer_restormer_config
from tests.conftest import FIXTURES, key_listing, state_listing

FIXTURE_NAMES = ["restormer_small_withbias", "restormer_small_biasfree", "restormer_small_dualpixel"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_official_fixture_loads_strict_and_reproduces_output(name: str, manifest: dict) -> None:
    model = Restormer.from_checkpoint(FIXTURES / f"{name}.state_dict.safetensors")
    io = load_file(FIXTURES / f"{name}.io.safetensors")
    with torch.no_grad():
        out = model(io["input"])
    assert out.shape == io["output"].shape
    assert (out - io["output"]).abs().max().item() <= 1e-5
    assert model.config.to_dict() == manifest[name]["config"]
    assert sum(p.numel() for p in model.parameters()) == manifest[name]["params"]
    assert len(model.state_dict()) == manifest[name]["keys"]


@pytest.mark.parametrize(
    ("preset", "listing"),
    [
        ("motion_deblurring", "restormer_keys.txt"),
        ("real_denoising", "restormer_keys_biasfree.txt"),
        ("gaussian_gray", "restormer_keys_gray_biasfree.txt"),
        ("defocus_dual_pixel", "restormer_keys_dualpixel.txt"),
    ],
)
def test_paper_size_keys_shapes_and_parameter_count(preset: str, listing: str) -> None:
    model = Restormer.from_preset(preset)
    keys, total = key_listing(listing)
    assert state_listing(model) == keys
    assert sum(p.numel() for p in model.parameters()) == total
    assert infer_restormer_config(model.state_dict()) == TASK_CONFIGS[preset]


def test_every_task_preset_builds_the_official_configuration() -> None:
    assert set(TASK_CONFIGS) == {
        "deraining",
        "motion_deblurring",
        "defocus_single",
        "defocus_dual_pixel",
        "gaussian_color",
        "gaussian_gray",
        "real_denoising",
    }
    for name in ("gaussian_color", "gaussian_gray", "real_denoising"):
        assert TASK_CONFIGS[name].LayerNorm_type == "BiasFree"
    assert (TASK_CONFIGS["gaussian_gray"].inp_channels, TASK_CONFIGS["gaussian_gray"].out_channels) == (1, 1)
    assert TASK_CONFIGS["defocus_dual_pixel"].inp_channels == 6 and TASK_CONFIGS["defocus_dual_pixel"].dual_pixel_task


def test_from_checkpoint_infers_non_default_configuration(tmp_path) -> None:
    model = Restormer(
        inp_channels=1,
        out_channels=3,
        dim=24,
        num_blocks=[2, 1, 3, 1],
        num_refinement_blocks=2,
        heads=[2, 2, 4, 4],
        ffn_expansion_factor=2.0,
        bias=True,
        LayerNorm_type="BiasFree",
    )
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    loaded = Restormer.from_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == model.config
    x = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.parametrize("layout", ["params", "params_ema", "state_dict", "plain", "module_prefix", "safetensors"])
def test_every_checkpoint_layout_loads(layout: str, tmp_path) -> None:
    state = load_file(FIXTURES / "restormer_small_withbias.state_dict.safetensors")
    path = tmp_path / ("ckpt.safetensors" if layout == "safetensors" else "ckpt.pth")
    if layout == "safetensors":
        save_file(state, path)
    elif layout == "plain":
        torch.save(state, path)
    elif layout == "module_prefix":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        torch.save({layout: state, "iter": torch.tensor(5)}, path)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    assert Restormer.from_checkpoint(path).config.dim == 16


# ---- bad input: one clear error each -------------------------------------------------------------------------


def test_truncated_checkpoint_is_reported(tmp_path) -> None:
    state = load_file(FIXTURES / "restormer_small_withbias.state_dict.safetensors")
    for suffix, save in ((".pth", torch.save), (".safetensors", save_file)):
        path = tmp_path / f"full{suffix}"
        save({"params": state} if suffix == ".pth" else state, path)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(CheckpointError, match="truncated"):
            Restormer.from_checkpoint(cut)


def test_checkpoint_that_is_not_a_state_dict(tmp_path) -> None:
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        Restormer.from_checkpoint(tmp_path / "tensor.pth")
    torch.save({"params": {"a": 1}}, tmp_path / "ints.pth")
    with pytest.raises(CheckpointError, match="not tensors"):
        Restormer.from_checkpoint(tmp_path / "ints.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        Restormer.from_checkpoint(tmp_path / "missing.pth")


class Sneaky:  # a pickled object: weights_only loading must refuse it rather than run its code
    def __reduce__(self):
        return (print, ("this must not run",))


def test_pickled_objects_are_refused(tmp_path) -> None:
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"params": Sneaky()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only"):
        Restormer.from_checkpoint(tmp_path / "evil.pth")


def test_checkpoint_of_another_architecture(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="MambaIRUNet.from_checkpoint"):
        Restormer.from_checkpoint(FIXTURES / "mambairunet_small.state_dict.safetensors")
    save_file({"conv.weight": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a Restormer checkpoint"):
        Restormer.from_checkpoint(tmp_path / "other.safetensors")


def test_key_mismatch_lists_grouped_keys_and_the_fitting_config(tmp_path) -> None:
    state = load_file(FIXTURES / "restormer_small_withbias.state_dict.safetensors")
    state["extra_head.weight"] = torch.zeros(3)
    state["extra_head.bias"] = torch.zeros(3)
    del state["down1_2.body.0.weight"]
    save_file(state, tmp_path / "odd.safetensors")
    with pytest.raises(CheckpointError) as err:
        Restormer.from_checkpoint(tmp_path / "odd.safetensors")
    message = str(err.value)
    assert "missing keys (1): down1_2.body.0.weight" in message
    assert "unexpected keys (2): extra_head.* (2 keys)" in message
    assert "dim=16" in message and "num_blocks=[1, 1, 2, 2]" in message


@pytest.mark.parametrize(
    ("shape", "match"),
    [((1, 3, 20, 24), "divisible by 8"), ((3, 16, 16), "batch dimension"), ((1, 1, 16, 16), "3 input channels")],
)
def test_bad_images_are_rejected_clearly(shape: tuple[int, ...], match: str) -> None:
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
    with pytest.raises(ValueError, match=match):
        model(torch.rand(shape))


def test_layer_norm_keeps_its_statistics_in_fp32_under_bf16_autocast() -> None:
    from edgeens.models.restormer import LayerNorm

    torch.manual_seed(0)
    norm = LayerNorm(16, "WithBias")
    x = (torch.randn(1, 16, 8, 8) * 30 + 200).to(torch.bfloat16)  # a large mean: bf16 statistics would lose it
    out = norm(x)
    assert out.dtype == torch.bfloat16
    reference = norm(x.float())
    assert (out.float() - reference).abs().max() < 0.05
    naive = (x - x.mean(1, keepdim=True)) * torch.rsqrt(
        ((x - x.mean(1, keepdim=True)) ** 2).mean(1, keepdim=True) + 1e-5
    )
    assert (naive.float() - reference).abs().max() > (out.float() - reference).abs().max()
