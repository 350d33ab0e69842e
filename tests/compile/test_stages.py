from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from edgeens.compile.artifact import CompileError
from edgeens.compile.executorch import run_program
from edgeens.compile.stages import (
    MANIFEST,
    StageProgramsRequest,
    build_stage_programs,
    fixed_part,
    stage_input_shape,
    stage_programs,
    stage_stack,
)
from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.models.space import PRESETS, SearchSpace, parse_families, preset_space
from tests.conftest import SMALL_TEACHER


def tiny_teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(**PRESETS["tiny"].to_dict()).eval()


def test_stage_shapes_follow_the_unet() -> None:
    stages = {s.name: s for s in preset_space("paper").stages}
    assert stage_input_shape(stages["encoder1"], 256, 192) == (1, 48, 256, 192)
    assert stage_input_shape(stages["latent"], 256, 192) == (1, 384, 32, 24)
    assert stage_input_shape(stages["decoder1"], 256, 192) == (1, 96, 256, 192)
    assert stage_input_shape(stages["refinement"], 256, 192) == (1, 96, 256, 192)


def test_fixed_part_plus_stages_is_the_hybrid() -> None:
    """Running the stage stacks on the features the fixed part hands them reproduces the whole hybrid."""
    teacher = tiny_teacher()
    hybrid = HybridUNet.from_teacher(teacher, "M2-R-R-M4-R-R-R-M2").eval()
    space = SearchSpace(teacher.config)
    x = torch.rand(1, 3, 16, 16)
    captured = {}
    hooks = [
        getattr(hybrid, s.module).register_forward_hook(lambda m, i, o, name=s.name: captured.__setitem__(name, i[0]))
        for s in space.stages
    ]
    with torch.no_grad():
        expected = hybrid(x)
    for hook in hooks:
        hook.remove()
    for stage, choice in zip(space.stages, hybrid.architecture, strict=True):
        stack = stage_stack(
            teacher,
            space,
            stage,
            choice,
            {
                (s.name, c): getattr(hybrid, s.module)
                for s, c in zip(space.stages, hybrid.architecture, strict=True)
                if c != "R"
            },
        )
        assert captured[stage.name].shape == stage_input_shape(stage, 16, 16)
        with torch.no_grad():
            assert torch.equal(stack(captured[stage.name]), getattr(hybrid, stage.module)(captured[stage.name]))
    with torch.no_grad():
        assert fixed_part(teacher)(x).shape == expected.shape
    assert [p.key for p in stage_programs(space)][:3] == ["fixed", "encoder1--R", "encoder1--M2"]
    assert len(stage_programs(space)) == 1 + sum(len(s.choices) for s in space.stages)


@pytest.mark.slow
def test_every_stage_program_of_a_small_teacher_builds_and_runs(small_stage_programs) -> None:
    teacher, folder, manifest, _ = small_stage_programs
    space = SearchSpace(teacher.config, parse_families("M,G"))
    keys = {p.key for p in stage_programs(space)}
    assert {"fixed", "encoder1--M1", "latent--M2", "refinement--G1"} <= set(manifest["programs"]) <= keys
    assert list(manifest["families"]) == ["M", "G"]
    for key, entry in manifest["programs"].items():
        program = (folder / entry["file"]).read_bytes()
        x = torch.randn(entry["input_shape"])
        assert run_program(program, (x,))[0].shape == x.shape or key == "fixed"
        assert entry["verification"]["max_abs_error"] <= 1e-4 and entry["delegated_calls"] >= 1
    on_disk = json.loads((folder / MANIFEST).read_text())
    assert on_disk["height"] == on_disk["width"] == 8

    # A re-run keeps what is built; another teacher is refused.
    before = (folder / "latent--M2.pte").stat().st_mtime_ns
    build_stage_programs(StageProgramsRequest(teacher, space, (8, 8), folder), ["latent--M2"], show_progress=False)
    assert (folder / "latent--M2.pte").stat().st_mtime_ns == before
    torch.manual_seed(1)
    with pytest.raises(CompileError, match="another teacher"):
        build_stage_programs(
            StageProgramsRequest(Restormer(**SMALL_TEACHER), space, (8, 8), folder), show_progress=False
        )


def test_unknown_program_keys_are_refused(tmp_path) -> None:
    with pytest.raises(CompileError, match="no stage program latent--M8"):
        teacher = tiny_teacher()
        request = StageProgramsRequest(teacher, SearchSpace(teacher.config), (16, 16), tmp_path)
        build_stage_programs(request, ["latent--M8"], show_progress=False)


def test_a_programs_folder_grows_by_family_but_never_mixes_two_meanings_of_a_letter(tmp_path) -> None:
    from edgeens.compile.stages import UPGRADES, _add_families
    from edgeens.files import upgrade_format
    from edgeens.models.space import ArchitectureError, parse_families, preset_space

    record = {"format": "edgeens.stages.v1", "programs": {"fixed": {}, "latent--M2": {}}}  # format 1: MambaIR at M
    legacy = upgrade_format(record, "stages", UPGRADES, tmp_path)
    grown = _add_families(legacy, preset_space("tiny", parse_families("M,G")), tmp_path)
    assert list(grown["families"]) == ["M", "G"]
    with pytest.raises(ArchitectureError, match="defines family G as"):
        _add_families(grown, preset_space("tiny", parse_families("G=mambair:d_state=2")), tmp_path)


@pytest.mark.slow
def test_quantized_stage_programs_are_calibrated_on_the_features_each_stage_sees(tmp_path) -> None:
    from edgeens.compile.quantize import Quantization
    from edgeens.compile.stages import stage_calibration

    torch.manual_seed(0)
    teacher = Restormer(**SMALL_TEACHER).eval()
    space = SearchSpace(teacher.config, parse_families("G"))
    images = tuple(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(2))
    features = stage_calibration(teacher, space, images)
    stages = {s.name: s for s in space.stages}
    assert features["fixed"] == images
    for name, seen in features.items():
        if name != "fixed":
            assert len(seen) == 2 and tuple(seen[0].shape) == stage_input_shape(stages[name], 16, 16)
    only = ["fixed", "latent--R"]  # an untrained G1 stack starts as the identity: nothing to quantize
    quantization = Quantization("w8a8", "conv", images)
    request = StageProgramsRequest(teacher, space, (16, 16), tmp_path, quantization=quantization)
    manifest = build_stage_programs(request, only, show_progress=False)
    for key in only:
        entry = manifest["programs"][key]
        assert "file" not in entry and (tmp_path / entry["file-w8a8"]).is_file()
        assert 0 < entry["verification-w8a8"]["max_abs_error"] < 0.5  # on a real feature map: close, not equal
    w8a16 = Quantization("w8a16", "conv", images)
    onnx_request = StageProgramsRequest(teacher, space, (16, 16), tmp_path, targets=("onnx",), quantization=w8a16)
    onnx = build_stage_programs(onnx_request, ["latent--R"], show_progress=False)
    entry = onnx["programs"]["latent--R"]
    assert (tmp_path / entry["onnx_file-w8a16"]).is_file() and "file-w8a8" in entry  # the int8 .pte is kept
    assert entry["onnx_verification-w8a16"]["max_abs_error"] < entry["verification-w8a8"]["max_abs_error"]
    with pytest.raises(CompileError, match="no 16-bit activations"):
        build_stage_programs(dataclasses.replace(request, quantization=w8a16), only, show_progress=False)
    with pytest.raises(CompileError, match="calibration image"):
        build_stage_programs(dataclasses.replace(request, quantization=Quantization("w8a8")), only, show_progress=False)


def test_a_version_1_stage_programs_manifest_names_the_papers_family() -> None:
    from edgeens.compile.stages import FORMAT, UPGRADES
    from edgeens.files import upgrade_format
    from edgeens.models.space import PAPER_FAMILIES, families_to_dict

    built = upgrade_format({"format": "edgeens.stages.v1", "programs": {"fixed": {}}}, "stages", UPGRADES, "s")
    empty = upgrade_format({"format": "edgeens.stages.v1", "programs": {}}, "stages", UPGRADES, "s")
    assert built["families"] == families_to_dict(PAPER_FAMILIES) and empty["families"] == {}
    assert built["format"] == FORMAT == "edgeens.stages.v2"
