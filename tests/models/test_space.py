from __future__ import annotations

import pytest

from edgeens.models.space import ArchitectureError, format_architecture, preset_space


def test_paper_space_matches_the_design() -> None:
    space = preset_space("paper")
    assert [s.name for s in space.stages] == [
        "encoder1",
        "encoder2",
        "encoder3",
        "latent",
        "decoder3",
        "decoder2",
        "decoder1",
        "refinement",
    ]
    assert [s.depth for s in space.stages] == [4, 6, 6, 8, 6, 6, 4, 4]
    assert [s.width for s in space.stages] == [48, 96, 192, 384, 192, 96, 96, 96]
    assert [s.level for s in space.stages] == [1, 2, 3, 4, 3, 2, 1, 1]
    assert [s.heads for s in space.stages] == [1, 2, 4, 8, 4, 2, 1, 1]
    assert space.stages[3].choices == ("R", "M8", "M6", "M4", "M2")
    assert len(space.surrogates()) == 22
    assert space.size == 34_560
    assert format_architecture(space.mamba_only) == "M4-M6-M6-M8-M6-M6-M4-M4"


def test_tiny_space_can_be_enumerated_and_every_string_round_trips() -> None:
    space = preset_space("tiny")
    architectures = list(space.architectures())
    assert len(architectures) == space.size and 200 <= space.size <= 1000
    assert len(set(architectures)) == space.size
    for arch in architectures:
        assert space.parse(format_architecture(arch)) == arch


def test_parse_accepts_the_design_example_and_lower_case() -> None:
    space = preset_space("paper")
    assert space.parse("R-M2-M4-R-M6-R-M2-R") == ("R", "M2", "M4", "R", "M6", "R", "M2", "R")
    assert space.parse(" r-m2-m4-r-m6-r-m2-r ") == ("R", "M2", "M4", "R", "M6", "R", "M2", "R")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("R-M2-M4-R-M6-R-M2", "7 tokens; it needs one per stage, 8"),
        ("R-M3-M4-R-M6-R-M2-R", "token 'M3' is not a choice for stage encoder2"),
        ("R-M2-M4-X-M6-R-M2-R", "token 'X' is not a choice for stage latent"),
        ("R-M2-M4-R-M8-R-M2-R", "stage decoder3 \\(6 teacher blocks\\); choose one of R, M6, M4, M2"),
    ],
)
def test_bad_architecture_strings_name_the_token_and_stage(text: str, match: str) -> None:
    with pytest.raises(ArchitectureError, match=match):
        preset_space("paper").parse(text)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="paper, tiny"):
        preset_space("huge")
