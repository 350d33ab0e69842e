from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.compile.stages import stage_programs
from edgeens.models import Restormer
from edgeens.profile.host import (
    INTERLEAVED,
    TimingPolicy,
    measure_architectures,
    measure_programs,
    time_runs,
)
from edgeens.profile.table import LatencyTable
from tests.conftest import profile_request

runner = CliRunner()


def test_timing_loop_warms_up_and_stops_when_the_median_is_stable() -> None:
    calls = []
    samples = time_runs(lambda: calls.append(1), TimingPolicy(warmup_runs=4, warmup_seconds=0, min_repeats=10))
    assert 10 <= len(samples) <= 100 and len(calls) >= len(samples) + 4
    assert all(s >= 0 for s in samples)
    bounded = time_runs(lambda: None, TimingPolicy(warmup_runs=0, warmup_seconds=0, min_repeats=3, max_repeats=3))
    assert len(bounded) == 3


def test_timing_loop_caps_warm_up_and_keeps_a_floor_of_samples_for_slow_programs() -> None:
    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.02)

    policy = TimingPolicy(warmup_runs=50, warmup_max_seconds=0.05, min_repeats=50, max_seconds=0.01, min_samples=4)
    samples = time_runs(slow, policy)
    assert len(samples) == 4  # the time budget ran out after one sample, the floor kept going
    assert 2 <= len(calls) - len(samples) <= 4  # warm-up stopped at its time cap, not after 50 runs


def test_interrupted_timing_resumes_after_the_last_program_measured(tmp_path) -> None:
    policy = TimingPolicy(warmup_runs=0, warmup_seconds=0, min_repeats=4, max_repeats=4, rounds=2)  # 2 a turn
    checkpoint = tmp_path / "timing.partial.json"
    keys = ["fixed", "encoder1--R", "encoder1--M2"]
    order: list[str] = []
    # The user stops the job while the 6th of 6 (round, program) turns loads: 5 turns are saved.
    with pytest.raises(KeyboardInterrupt):
        measure_programs(_runners(keys, order, stop_at=6), policy, checkpoint=checkpoint, context={"threads": 1})
    saved = json.loads(checkpoint.read_text())
    assert len(saved["done"]) == 5 and sum(len(v) for v in saved["samples"].values()) == 10
    resumed: list[str] = []
    samples = measure_programs(_runners(keys, resumed), policy, checkpoint=checkpoint, context={"threads": 1})
    assert resumed == [order[5]]  # only the turn that never finished runs again
    assert all(len(v) == 4 for v in samples.values())
    assert not checkpoint.exists()  # finished: nothing left to resume
    # A checkpoint taken in another context (here: thread count) is ignored, not merged.
    with pytest.raises(KeyboardInterrupt):
        measure_programs(_runners(keys, [], stop_at=3), policy, checkpoint=checkpoint, context={"threads": 1})
    fresh: list[str] = []
    measure_programs(_runners(keys, fresh), policy, checkpoint=checkpoint, context={"threads": 2})
    assert len(fresh) == 6


def _runners(keys: list[str], order: list[str], stop_at: int | None = None):
    """Runner factories that record the order programs load in, and interrupt the job on load number `stop_at`."""

    def factory(key: str):
        def load():
            order.append(key)
            if len(order) == stop_at:
                raise KeyboardInterrupt
            return lambda: None

        return load

    return {k: factory(k) for k in keys}


@pytest.fixture
def nano_teacher(tmp_path):  # a checkpoint for the error cases
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    path = tmp_path / "nano.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _profile_args(checkpoint, programs, tmp_path, validate: int) -> list[str]:
    # The small teacher at 8x8, on a copy of the session's stage programs (the command builds none of them).
    args = ["profile", "--teacher", str(checkpoint), "--families", "G", "--size", "8"]
    args += ["--validate", str(validate), "--min-repeats", "3", "--max-repeats", "6"]
    args += ["--out", str(tmp_path / "profiles"), "--programs", str(programs), "--reports", str(tmp_path / "reports")]
    return [*args, "--jobs", "2"]


@pytest.mark.slow(seconds=75)
def test_compile_stages_then_profile_reuses_the_programs_validates_and_reuses_the_table(
    small_stage_programs, tmp_path, monkeypatch
) -> None:
    import edgeens.compile.stages as stages

    teacher, folder, _, session_checkpoint = small_stage_programs
    monkeypatch.chdir(tmp_path)  # both commands' default folder: exports/stages-small-8x8
    checkpoint = tmp_path / session_checkpoint.name  # beside the session's programs it would lead the CLI to them
    shutil.copy(session_checkpoint, checkpoint)
    # The session's programs of the small teacher at the U-Net's smallest size, less two that `compile --stages`
    # must build (gated-conv ones lower in seconds; the paths through compile, profile and validation are the same).
    programs = tmp_path / "exports" / "stages-small-8x8"
    shutil.copytree(folder, programs)
    for key in ("latent--G1", "refinement--G1"):
        (programs / f"{key}.pte").unlink()
    common = ["--teacher", str(checkpoint), "--families", "G", "--size", "8", "--jobs", "2"]
    built = runner.invoke(app, ["compile", "--stages", *common])
    assert built.exit_code == 0, built.output
    assert (programs / "latent--G1.pte").is_file() and (programs / "refinement--G1.pte").is_file()
    keys = json.loads((programs / "stages.json").read_text())["programs"]
    assert "fixed" in keys and any(key.endswith("--G1") for key in keys)

    def no_lowering(*args, **kwargs):
        raise AssertionError("profile lowered a stage program that compile --stages had built")

    monkeypatch.setattr(stages, "lower_to_executorch", no_lowering)  # whole architectures still lower (validation)
    args = ["profile", *common, "--validate", "3", "--min-repeats", "3", "--max-repeats", "6"]
    args += ["--out", "profiles", "--reports", "reports"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stem = "host--executorch-xnnpack--8x8--small-g"
    table = LatencyTable.load(tmp_path / "profiles" / f"{stem}.json")
    assert sum(len(row) for row in table.stages.values()) == len(stage_programs(table.space)) - 1
    assert table.fixed.samples >= 3 and table.stages["latent"]["G1"].median_ms > 0
    assert table.threads == 1 and table.command.startswith("edgeens profile --device host --teacher")
    predicted = sorted(table.predict_ms(a) for a in table.space.architectures())
    measured = sorted(table.predict_ms(a) for a in table.end_to_end)
    assert len(measured) == 3 and measured[0] == predicted[0] and measured[-1] == predicted[-1]  # both extremes
    assert table.end_to_end_programs == "lowered" and len(list((programs / "end_to_end").glob("*.pte"))) == 3
    report = json.loads((tmp_path / "reports" / f"validation--{stem}.json").read_text())
    assert report["architectures"] == 3 and -1 <= report["calibrated"]["spearman"] <= 1
    assert (tmp_path / "reports" / f"validation--{stem}.png").stat().st_size > 10_000
    assert "Spearman" in result.output

    again = runner.invoke(app, [*args, "--repeat-check"])  # the table and the 3 measurements are reused
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output and "repeat run:" in again.output
    assert (tmp_path / "reports" / f"repeatability--{stem}.json").is_file()


@pytest.mark.slow
def test_linked_validation_is_timed_in_the_tables_own_rounds(small_stage_programs, tmp_path) -> None:
    teacher, folder, _, checkpoint = small_stage_programs
    programs = tmp_path / "programs"
    shutil.copytree(folder, programs)
    args = [
        *_profile_args(checkpoint, programs, tmp_path, validate=4),
        "--validate-programs",
        "linked",
        "--min-samples",
        "2",
        "--rounds",
        "1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "measuring the table once to choose the validation architectures" in result.output
    path = tmp_path / "profiles" / "host--executorch-xnnpack--8x8--small-g.json"
    table = LatencyTable.load(path)
    assert table.end_to_end_programs == INTERLEAVED and len(table.end_to_end) == 4
    assert "--min-samples 2 --rounds 1" in table.command and table.repeats.endswith("; 1 shuffled round")
    assert not (programs / "end_to_end").exists()  # linked in memory, nothing lowered whole
    assert not list(programs.glob("timing--*.partial.json"))  # the shared timing checkpoint is done with
    report = json.loads((tmp_path / "reports" / "validation--host--executorch-xnnpack--8x8--small-g.json").read_text())
    assert report["end_to_end_programs"] == INTERLEAVED and report["architectures"] == 4

    again = runner.invoke(app, args)  # reused: the same 4 timings are reported again, nothing is measured alone
    assert again.exit_code == 0, again.output
    reread = LatencyTable.load(path)
    assert "reusing" in again.output and reread.end_to_end == table.end_to_end
    at = args.index("--validate")
    other = runner.invoke(app, [*args[: at + 1], "5", *args[at + 2 :]])
    assert other.exit_code == 2 and "add --remeasure to validate 5" in " ".join(other.output.split())
    # One the table has not timed (the 4 it validated are chosen from measured latencies, so they vary by run).
    singles = ["-".join("G1" if i == stage else "R" for i in range(8)) for stage in range(8)]
    untimed = next(a for a in singles if a not in reread.end_to_end)
    with pytest.raises(ValueError, match="would mix"):
        measure_architectures(profile_request(teacher, programs), table, [untimed], tmp_path / "t.json")


@pytest.mark.slow
def test_linked_validation_times_linked_programs_and_never_mixes_methods(small_stage_programs, tmp_path) -> None:
    from tests.conftest import SMALL_TEACHER
    from tests.profile.test_table import synthetic_table

    teacher, session_folder, _, _ = small_stage_programs
    folder = tmp_path / "programs"  # a copy: the session's folder stays as built for the tests that copy it
    shutil.copytree(session_folder, folder)
    table = synthetic_table(config=SMALL_TEACHER, height=8, families="M,G")
    policy = TimingPolicy(warmup_runs=1, warmup_seconds=0, min_repeats=3, max_repeats=3)
    architectures = ["R-R-R-R-R-R-R-R", "M1-R-G1-M2-R-R-G1-R"]
    request = profile_request(teacher, folder, policy=policy, validate_programs="linked")
    measure_architectures(request, table, architectures, tmp_path / "table.json")
    saved = LatencyTable.load(tmp_path / "table.json")
    assert saved.end_to_end_programs == "linked" and set(saved.end_to_end) == set(architectures)
    assert all(latency.samples == 3 and latency.median_ms > 0 for latency in saved.end_to_end.values())
    assert not any((folder / "end_to_end" / f"{a}.pte").exists() for a in architectures)  # nothing lowered whole
    with pytest.raises(ValueError, match="would mix"):
        lowered = dataclasses.replace(request, validate_programs="lowered")
        measure_architectures(lowered, saved, ["R-R-R-R-R-R-R-G1"], tmp_path / "table.json")


def test_profile_bad_inputs_exit_with_a_message(tmp_path, nano_teacher) -> None:
    cases = [
        (["profile", "--preset", "tiny", "--size", "100"], "multiple of 8"),
        (["profile"], "name the space"),
        (["profile", "--preset", "huge"], "unknown preset"),
        (["profile", "--teacher", str(tmp_path / "missing.pth")], "does not exist"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)


def _copy_float_as_quantized(request, program, target, quantization):
    """Stands in for building a quantized stage program (seconds each): the session's float program under the
    quantized name. What is checked with it is the table's side: names, precision, reuse, validation."""
    out = request.folder
    file = f"{program.key}{quantization.suffix}.pte"
    shutil.copy(out / f"{program.key}.pte", out / file)
    return {f"file{quantization.suffix}": file}


@pytest.mark.slow
def test_a_quantized_table_is_its_own_table_of_its_own_programs(small_stage_programs, tmp_path, monkeypatch) -> None:
    import edgeens.compile.stages as stages
    from tests.data.layouts import make_layout

    _, session_folder, _, checkpoint = small_stage_programs
    programs, profiles = tmp_path / "programs", tmp_path / "profiles"
    shutil.copytree(session_folder, programs)
    monkeypatch.setattr(stages, "_build_one", _copy_float_as_quantized)
    data = make_layout(tmp_path / "pairs", "restormer", count=10)
    args = ["profile", "--teacher", str(checkpoint), "--families", "G", "--size", "8", "--programs", str(programs)]
    args += ["--out", str(profiles), "--min-repeats", "3", "--max-repeats", "3", "--rounds", "1", "--data", str(data)]
    quantized = [*args, "--quantize", "w8a8", "--calibration-images", "2"]
    result = runner.invoke(app, quantized)
    assert result.exit_code == 0, result.output
    table = LatencyTable.load(profiles / "host--executorch-xnnpack-w8a8--8x8--small-g.json")
    assert table.precision == "w8a8" and table.quantize_scope == "conv" and "--quantize w8a8" in table.command
    assert table.command.endswith(f"--data {data} --calibration-images 2")  # where the calibration came from
    assert "executorch-xnnpack w8a8" in " ".join(result.output.split())
    entries = json.loads((programs / "stages.json").read_text())["programs"]
    assert all("file-w8a8" in entries[p.key] for p in stage_programs(table.space))
    # No float table is taken for it, nor it for a float one; each is found again by its precision.
    assert not list(profiles.glob("host--executorch-xnnpack--*"))
    float_result = runner.invoke(app, args)
    assert float_result.exit_code == 0 and "reusing" not in float_result.output, float_result.output
    assert LatencyTable.load(profiles / "host--executorch-xnnpack--8x8--small-g.json").precision == "fp32"
    again = runner.invoke(app, quantized)
    assert again.exit_code == 0 and "reusing" in again.output, again.output
    refusals = [
        (["--quantize", "w8a16"], "no 16-bit activations"),
        (["--quantize", "w8a8", "--device", "Snapdragon 8 Elite QRD"], "measured on this machine"),
        (["--quantize", "w8a8", "--validate", "3", "--validate-programs", "linked"], "validate a quantized table"),
        (["--quantize", "w4a4"], "unknown precision"),
        (["--quantize", "w8a8", "--scope", "most"], "unknown quantization scope"),
    ]
    for extra, message in refusals:
        refused = runner.invoke(app, [*args, *extra])
        assert refused.exit_code == 2 and message in " ".join(refused.output.split()), (extra, refused.output)


@pytest.mark.slow
def test_a_quantized_tables_validation_quantizes_each_architecture_whole(small_stage_programs, tmp_path) -> None:
    from edgeens.compile.quantize import Quantization
    from tests.conftest import SMALL_TEACHER
    from tests.profile.test_table import synthetic_table

    teacher, _, _, _ = small_stage_programs
    table = synthetic_table(config=SMALL_TEACHER, height=8, families="G")
    table.precision = "w8a8"
    images = tuple(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2))
    policy = TimingPolicy(warmup_runs=1, warmup_seconds=0, min_repeats=3, max_repeats=3)
    architecture = "G1-R-R-R-G1-R-R-R"
    with pytest.raises(ValueError, match="validation programs fp32"):
        measure_architectures(
            profile_request(teacher, tmp_path, policy=policy), table, [architecture], tmp_path / "t.json"
        )
    quantization = Quantization("w8a8", "conv", images)
    request = profile_request(teacher, tmp_path, policy=policy, quantization=quantization)
    measure_architectures(request, table, [architecture], tmp_path / "table.json")
    program = tmp_path / "end_to_end" / f"{architecture}-w8a8.pte"
    assert program.is_file() and LatencyTable.load(tmp_path / "table.json").end_to_end[architecture].samples == 3
    from edgeens.compile.executorch import read_program, run_program
    from edgeens.models.hybrid import HybridUNet

    with torch.no_grad():
        eager = HybridUNet.from_teacher(teacher, architecture, None, table.space.families).eval()(images[0])
    error = (run_program(read_program(program), (images[0],))[0] - eager).abs().max().item()
    assert 0 < error < 0.5  # int8: near the float hybrid, not equal to it
