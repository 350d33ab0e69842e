from __future__ import annotations

import pytest
import torch

from edgeens.models.hybrid import HybridUNet
from edgeens.models.mambair import SS2D, VSSStage
from edgeens.models.restormer import Restormer
from edgeens.models.space import PRESETS, parse_families, preset_space
from edgeens.models.surrogates import GatedConvBlock, GatedConvStage, build_surrogate

FAMILIES = parse_families("M,L,S,G")


@pytest.fixture(scope="module")
def teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(**PRESETS["tiny"].to_dict()).eval()


def test_an_untrained_gated_conv_block_is_the_identity_and_trains_away_from_it() -> None:
    torch.manual_seed(0)
    block = GatedConvBlock(16)
    x = torch.randn(2, 16, 8, 12)
    assert torch.equal(block(x), x)  # zero residual scales: distillation starts from the identity map
    torch.nn.init.normal_(block.beta)
    torch.nn.init.normal_(block.gamma)
    y = block(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


@pytest.mark.parametrize("token", ["M2", "L2", "S2", "G2", "G1"])
def test_every_family_builds_a_stack_that_keeps_the_stage_shape(token: str) -> None:
    space = preset_space("tiny", FAMILIES)
    stage = space.stages[1]  # encoder2: width 32
    stack = build_surrogate(stage, token, space.family(token[0]))
    depth = int(token[1:])
    assert len(stack) == depth
    assert isinstance(stack, GatedConvStage if token[0] == "G" else VSSStage)
    x = torch.randn(1, stage.width, 8, 8)
    with torch.no_grad():
        assert stack(x).shape == x.shape


def test_lighter_mambair_knobs_shrink_the_block_as_declared() -> None:
    space = preset_space("tiny", FAMILIES)
    stage = space.stages[0]  # width 16
    params = {
        t: sum(p.numel() for p in build_surrogate(stage, t, space.family(t[0])).parameters())
        for t in ("M2", "L2", "S2")
    }
    assert params["M2"] > params["L2"] > params["S2"]
    ss2d = build_surrogate(stage, "S2", space.family("S"))[0].self_attention
    assert isinstance(ss2d, SS2D)
    assert (ss2d.directions, ss2d.d_state, ss2d.d_inner) == (2, 4, 16)
    assert ss2d.x_proj_weight.shape[0] == 2 and ss2d.A_logs.shape == (2 * 16, 4)


def test_two_direction_scan_sees_the_whole_image_both_ways() -> None:
    # Rows forward and reversed: the output at the first pixel depends on the last one and vice versa.
    torch.manual_seed(0)
    ss2d = SS2D(8, d_state=4, expand=1.0, directions=2).eval()
    x = torch.randn(1, 6, 6, 8, requires_grad=True)
    ss2d(x)[0, 0, 0].sum().backward()
    assert x.grad[0, -1, -1].abs().sum() > 0
    with pytest.raises(ValueError, match="4 directions .* or 2"):
        SS2D(8, directions=3)


def test_hybrid_with_new_families_saves_its_knobs_and_loads_alone(teacher: Restormer, tmp_path) -> None:
    hybrid = HybridUNet.from_teacher(teacher, "G1-S2-R-L4-R-M2-G2-R", families=FAMILIES).eval()
    hybrid.save(tmp_path / "hybrid.safetensors")
    loaded = HybridUNet.load(tmp_path / "hybrid.safetensors")
    assert loaded.architecture_string == "G1-S2-R-L4-R-M2-G2-R"
    assert loaded.space.families == FAMILIES
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), hybrid(x))
