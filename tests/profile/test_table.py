from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeens.models.restormer import RestormerConfig
from edgeens.models.space import SearchSpace, families_to_dict, parse_families, preset_space
from edgeens.profile.correlate import spread_architectures, validation_report
from edgeens.profile.table import (
    Latency,
    LatencyTable,
    ProfileError,
    calibrated_penalty,
    heuristic_penalty,
    total_penalty,
)


def synthetic_table(
    preset: str = "tiny", height: int = 64, config: dict | None = None, families: str = "M"
) -> LatencyTable:
    """Stage latencies proportional to depth (surrogate blocks cheaper than Restormer ones), deterministic; for a
    preset, or for a teacher `config` (Restormer keyword arguments) with `families`."""
    space = SearchSpace(RestormerConfig(**config), parse_families(families)) if config else preset_space(preset)
    stages = {}
    for level_cost, stage in zip([4.0, 2.0, 1.0, 0.5, 1.0, 2.0, 4.0, 4.0], space.stages, strict=True):
        row = {"R": Latency.of([level_cost * stage.depth] * 5)}
        for choice in stage.choices[1:]:
            row[choice] = Latency.of([0.6 * level_cost * int(choice[1:])] * 5)
        stages[stage.name] = row
    return LatencyTable(
        device="host",
        runtime="executorch-xnnpack",
        height=height,
        width=height,
        teacher=space.teacher.to_dict(),
        fixed=Latency.of([1.0, 1.1, 0.9]),
        stages=stages,
        space_name="teacher" if config else preset,
        families=families_to_dict(space.families),
    )


def test_latency_summary_and_noise_flag() -> None:
    steady = Latency.of([10.0] * 9 + [10.5])
    assert steady.median_ms == 10.0 and steady.samples == 10 and not steady.noisy
    noisy = Latency.of(np.linspace(5, 15, 20))
    assert noisy.noisy and noisy.p10_ms < noisy.median_ms < noisy.p90_ms
    with pytest.raises(ProfileError, match="positive and finite"):
        Latency.of([1.0, float("nan")])


def test_table_round_trips_and_predicts(tmp_path) -> None:
    table = synthetic_table()
    path = table.save(tmp_path)
    assert path.name == "host--executorch-xnnpack--64x64--tiny.json"
    loaded = LatencyTable.load(path)
    assert loaded == table
    teacher = table.space.teacher_only
    expected = 1.0 + sum(table.stages[s.name]["R"].median_ms for s in table.space.stages)
    assert loaded.predict_ms(teacher) == pytest.approx(expected)
    assert loaded.predict_ms("R-M2-R-M4-R-R-R-M2") < expected


def test_a_table_for_another_space_or_size_is_refused() -> None:
    table = synthetic_table("tiny", 64)
    table.check_fits(preset_space("tiny"), 64, 64)
    with pytest.raises(ProfileError, match="another search space"):
        table.check_fits(preset_space("paper"), 64, 64)
    with pytest.raises(ProfileError, match="measured at 64x64, not 256x256"):
        table.check_fits(preset_space("tiny"), 256, 256)


def test_malformed_and_truncated_tables_are_refused(tmp_path) -> None:
    path = synthetic_table().save(tmp_path)
    text = path.read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    with pytest.raises(ProfileError, match="not readable JSON"):
        LatencyTable.load(tmp_path / "truncated.json")
    raw = json.loads(text)
    del raw["stages"]["latent"]["M4"]
    (tmp_path / "incomplete.json").write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match="lacks latent--M4"):
        LatencyTable.load(tmp_path / "incomplete.json")
    raw = json.loads(text)
    raw["fixed"]["median_ms"] = -1
    (tmp_path / "negative.json").write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match="fixed is not a positive"):
        LatencyTable.load(tmp_path / "negative.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ProfileError, match="not an edgeens latency table"):
        LatencyTable.load(tmp_path / "other.json")
    with pytest.raises(ProfileError, match="does not exist"):
        LatencyTable.load(tmp_path / "missing.json")


def test_penalties_order_as_the_paper_says() -> None:
    space = preset_space("paper")
    heuristic = heuristic_penalty(space)
    for stage in space.stages:
        row = heuristic[stage.name]
        costs = [row[c] for c in stage.choices]  # R, then deepest to shallowest MambaIR stack
        assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)
    calibrated = calibrated_penalty(synthetic_table("paper"))
    assert calibrated["latent"]["R"] == pytest.approx(0.5 * 8)
    assert total_penalty(heuristic, space, space.teacher_only) == pytest.approx(8.0)


def test_spread_architectures_cover_the_predicted_range() -> None:
    table = synthetic_table()
    chosen = spread_architectures(table, 12)
    assert len(chosen) == len(set(chosen)) == 12
    predicted = sorted(table.predict_ms(a) for a in chosen)
    every = sorted(table.predict_ms(a) for a in table.space.architectures())
    assert predicted[0] == pytest.approx(every[0]) and predicted[-1] == pytest.approx(every[-1])
    gaps = np.diff(predicted)
    assert gaps.max() < 3 * (every[-1] - every[0]) / 11  # no large hole in the coverage


def test_log_spread_spaces_predictions_evenly_in_log_latency() -> None:
    table = synthetic_table()
    chosen = spread_architectures(table, 12, spacing="log")
    predicted = np.log(sorted(table.predict_ms(a) for a in chosen))
    every = np.log(sorted(table.predict_ms(a) for a in table.space.architectures()))
    assert (
        len(set(chosen)) == 12 and predicted[0] == pytest.approx(every[0]) and predicted[-1] == pytest.approx(every[-1])
    )
    assert np.diff(predicted).max() < 3 * (every[-1] - every[0]) / 11
    linear = sorted(table.predict_ms(a) for a in spread_architectures(table, 12))
    assert np.median(np.exp(predicted)) < np.median(linear)  # log spacing puts more of them among the fast ones
    with pytest.raises(ValueError, match="unknown spacing"):
        spread_architectures(table, 12, spacing="square")


def test_validation_report_of_a_perfectly_additive_device() -> None:
    table = synthetic_table()
    for architecture in spread_architectures(table, 10):
        table.end_to_end[architecture] = Latency.of([table.predict_ms(architecture) * 1.02] * 5)
    report = validation_report(table)
    calibrated = report["calibrated"]
    assert calibrated["spearman"] == pytest.approx(1.0) and calibrated["mape"] == pytest.approx(0.02 / 1.02)
    assert calibrated["within_10pct"] == 1.0 and calibrated["fit_mape"] < 1e-9
    assert -1 <= report["heuristic"]["spearman"] <= 1 and len(report["rows"]) == 10


def test_a_table_of_other_families_gets_its_own_file_name() -> None:
    # `edgeens profile --families M,S,G` names its space "<preset>+MSG"; tables of two family sets must not collide.
    table = synthetic_table("tiny", height=8)
    assert table.filename() == "host--executorch-xnnpack--8x8--tiny.json"
    table.space_name = "tiny" + SearchSpace(table.space.teacher, parse_families("M,S,G")).name_suffix
    assert table.filename() == "host--executorch-xnnpack--8x8--tiny-msg.json"


def test_a_table_of_programs_from_an_older_export_form_says_so() -> None:
    from edgeens.compile.artifact import tool_versions
    from edgeens.models import EXPORT_FORM_VERSION

    table = synthetic_table("tiny", height=8)
    table.versions = tool_versions()  # what profile_host records now (a format-1 table without it: form 2)
    assert table.versions["export_form"] == EXPORT_FORM_VERSION and table.stale_programs() is None
    table.versions["export_form"] = EXPORT_FORM_VERSION - 1
    assert "--remeasure with a fresh --programs folder" in table.stale_programs()


def test_a_damaged_table_among_the_committed_ones_is_named_not_passed_over(tmp_path) -> None:
    from edgeens.models.restormer import Restormer
    from edgeens.models.space import PRESETS
    from edgeens.profile.table import existing_table

    table = synthetic_table("tiny")
    table.save(tmp_path)
    damaged = tmp_path / "host--executorch-xnnpack--64x64--other.json"
    damaged.write_text('{"format": ')  # a table another space saved, cut off mid-write
    teacher = Restormer(**PRESETS["tiny"].to_dict())
    said: list[str] = []
    wanted = LatencyTable.wanted(teacher.config, 64, 64, "executorch", 1, "a-space-with-no-table")
    found = existing_table(tmp_path, wanted, say=said.append)
    assert found is not None and found.space_name == "tiny"  # the good one still serves
    assert len(said) == 1 and str(damaged) in said[0] and "not readable JSON" in said[0] and "not used" in said[0]


def test_the_precision_tables_script_sets_two_tables_side_by_side(tmp_path) -> None:
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "precision_tables.py"))
    wide = synthetic_table(families="M,G")  # a float table of more families serves the comparison
    narrow = synthetic_table(families="M")
    narrow.precision = "w8a8"
    narrow.fixed = Latency.of([narrow.fixed.median_ms / 2] * 5)
    wide.save(tmp_path / "float.json"), narrow.save(tmp_path / "int8.json")
    text = script["main"](str(tmp_path / "float.json"), str(tmp_path / "int8.json"), [])
    assert "| fixed | - |" in text and "| 2.00x |" in text
    assert "executorch-xnnpack w8a8" in text and "| R-R-R-R-R-R-R-R |" in text


def test_a_version_1_table_is_read_as_the_current_format(tmp_path) -> None:
    from edgeens.files import NewerFormatError
    from edgeens.models import EXPORT_FORM_VERSION
    from edgeens.models.space import PAPER_FAMILIES
    from edgeens.profile.table import FORMAT

    committed = Path(__file__).resolve().parents[2] / "profiles" / "host--executorch-xnnpack--256x256--tiny.json"
    raw = json.loads(committed.read_text())  # written by format 1: no families, no export form
    assert raw["format"] == "edgeens.latency.v1" and not raw.get("families") and "export_form" not in raw["versions"]
    table = LatencyTable.load(committed)
    assert table.space.families == PAPER_FAMILIES and table.versions["export_form"] == 2
    assert EXPORT_FORM_VERSION > 2 and "export form 2" in table.stale_programs()
    saved = json.loads(table.save(tmp_path / "t.json").read_text())
    assert saved["format"] == FORMAT == "edgeens.latency.v2" and saved["families"]
    (tmp_path / "new.json").write_text(json.dumps({**saved, "format": "edgeens.latency.v3"}))
    with pytest.raises(NewerFormatError, match="newer edgeens"):
        LatencyTable.load(tmp_path / "new.json")
