from __future__ import annotations

import re

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
        ("R-M2-M4-R-M8-R-M2-R", "stage decoder3 \\(6 teacher blocks, families M\\); choose one of R, M6, M4, M2"),
    ],
)
def test_bad_architecture_strings_name_the_token_and_stage(text: str, match: str) -> None:
    with pytest.raises(ArchitectureError, match=match):
        preset_space("paper").parse(text)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="paper, tiny"):
        preset_space("huge")


def test_families_extend_every_stage_with_their_own_letter_and_keep_m_the_paper_s() -> None:
    from edgeens.models.space import FAMILIES, parse_families

    space = preset_space("tiny", parse_families("M,S,G"))
    assert space.stages[3].choices == ("R", "M4", "M2", "S4", "S2", "G4", "G2", "G1")  # latent: 4 teacher blocks
    assert space.stages[0].choices == ("R", "M2", "S2", "G2", "G1")
    assert space.size == 5**7 * 8
    assert len(space.surrogates()) == 7 * 4 + 7
    assert space.parse("G1-S2-M2-G4-R-R-G2-G1") == ("G1", "S2", "M2", "G4", "R", "R", "G2", "G1")
    assert space.name_suffix == "+MSG" and preset_space("tiny").name_suffix == ""
    assert space.family_only("G") == ("G2", "G2", "G2", "G4", "G2", "G2", "G2", "G2")
    # M stays MambaIR at the paper's settings, whatever else the space holds.
    assert space.family("M") == FAMILIES["M"] and FAMILIES["M"].settings == {
        "d_state": 16,
        "directions": 4,
        "expand": 2,
    }
    with pytest.raises(ArchitectureError, match="token 'G1' is not a choice for stage latent"):
        preset_space("tiny").parse("R-R-R-G1-R-R-R-R")


def test_custom_families_declare_their_knobs() -> None:
    from edgeens.models.space import families_from_dict, families_to_dict, parse_families

    families = parse_families("X=mambair:d_state=2,directions=2; G")
    assert [f.letter for f in families] == ["X", "G"]
    assert families[0].settings == {"d_state": 2, "directions": 2}
    assert families_from_dict(families_to_dict(families)) == families
    assert families_from_dict(None) == parse_families("M")  # files from before families existed


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Q", "unknown surrogate family 'Q'"),
        ("M,M", "family letters must be distinct"),
        ("R=gated_conv", "one letter other than R"),
        ("X=transformer", "unknown block kind 'transformer'"),
        ("X=mambair:heads=2", "mambair has no knob heads; its knobs are d_state, directions, expand"),
        ("X=mambair:d_state=four", "knob 'd_state=four' is not name=number"),
        ("", "no surrogate family given"),
    ],
)
def test_bad_family_definitions_say_what_is_wrong(text: str, match: str) -> None:
    from edgeens.models.space import parse_families

    with pytest.raises(ArchitectureError, match=match):
        parse_families(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("M,X=mambair:d_state=2", "with ';' when any is defined with knobs"),
        ("M;M", "separate them with ','"),
        ("Q", "unknown surrogate family 'Q'"),
        ("", "no surrogate family given"),
        ("M,M", "must be distinct"),
        ("X=mambair:d_state=two", "is not name=number"),
    ],
)
def test_a_bad_families_option_says_what_is_wrong_and_how_to_write_it(text: str, says: str) -> None:
    from edgeens.models.space import ArchitectureError, parse_families

    with pytest.raises(ArchitectureError, match=re.escape(says)):
        parse_families(text)
