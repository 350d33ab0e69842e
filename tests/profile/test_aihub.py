from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import edgeens.compile.aihub as compile_aihub
from edgeens.compile.aihub import LEDGER, AIHubError
from edgeens.models import Restormer
from edgeens.profile.aihub import hub_latency, profile_on_hub
from edgeens.profile.table import LatencyTable, ProfileError
from tests.conftest import profile_request
from tests.local_hub import LocalHub, State


@pytest.fixture
def hub(tmp_path, monkeypatch) -> LocalHub:
    ini = tmp_path / "client.ini"
    ini.write_text("[api]\napi_token = secret-token\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    fake = LocalHub(steps_to_finish=2, max_iterations=5)
    monkeypatch.setattr(compile_aihub, "import_hub", lambda: fake)
    return fake


def nano_teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()


def hub_table(tmp_path, device: str, progress=None, **fields) -> LatencyTable:
    """The nano teacher's table at 16x16 on `device` through the test Hub (polled without waiting)."""
    request = profile_request(nano_teacher(), tmp_path, 16, device=device, hub_poll=0, **fields)
    return profile_on_hub(request, progress=progress)


# The client's own example profile (qai_hub/test/test_client.py), as download_profile() returns it.
PROFILE = {"execution_summary": {"estimated_inference_time": 3652, "all_inference_times": [10003, 4205]}}


def test_profile_dict_becomes_milliseconds() -> None:
    latency = hub_latency(PROFILE)
    assert latency.samples == 2 and latency.median_ms == pytest.approx((10.003 + 4.205) / 2)
    legacy = hub_latency({"execution_summary": {"estimated_inference_time": 3652}})
    assert legacy.median_ms == pytest.approx(3.652)
    with pytest.raises(ProfileError, match="neither"):
        hub_latency({"execution_summary": {}})


def test_every_program_is_compiled_and_profiled_and_a_rerun_pays_nothing(hub, tmp_path) -> None:
    table = hub_table(tmp_path, "Snapdragon 8 Elite", space_name="nano")
    programs = 1 + 2 * 8  # the fixed part, R and M1 at each of the 8 stages
    kinds = [job.kind for job in hub.submitted]
    assert kinds.count("compile") == programs and kinds.count("profile") == programs
    assert kinds[:programs] == ["compile"] * programs  # all compiles submitted before any wait
    assert all(job.options["--compute_unit"] == "cpu" for job in hub.submitted)  # the paper's unit by default
    assert table.device == "Snapdragon 8 Elite QRD" and table.runtime == "aihub-tflite-cpu"
    assert table.chipset == "qualcomm-snapdragon-8-elite" and table.compute_unit == "cpu"
    # Measured by running the uploaded programs: a MambaIR stage costs more than the attention block it replaces
    # at this size, and every latency has the profile's samples.
    assert table.stages["encoder1"]["M1"].median_ms > table.stages["encoder1"]["R"].median_ms > 0
    assert table.fixed.samples == 5
    path = table.save(tmp_path / "profiles")
    assert LatencyTable.load(path).placement == table.placement
    assert table.placement["cpu_fallback_share"] == 0 and set(table.placement["units"]) == {"CPU"}
    detail = json.loads((tmp_path / "aihub-profile--Snapdragon 8 Elite QRD--tflite--cpu--16x16.json").read_text())
    layers = detail["layers"]["fixed"]["execution_detail"]
    assert {layer["type"] for layer in layers} >= {"conv2d", "pixel_shuffle"} and all(
        layer["execution_time"] >= 0 for layer in layers
    )

    hub_table(tmp_path, "Snapdragon 8 Elite QRD")
    assert len(hub.submitted) == 2 * programs  # the same jobs, collected again


def test_the_compute_unit_is_in_the_tables_identity_and_its_fallback_is_reported(hub, tmp_path) -> None:
    cpu = hub_table(tmp_path, "Snapdragon 8 Elite", space_name="nano")
    npu = hub_table(tmp_path, "Snapdragon 8 Elite", space_name="nano", compute_unit="npu")
    assert len(hub.submitted) == 4 * 17  # the NPU table is measured, not served from the CPU one
    assert npu.runtime == "aihub-tflite-npu" and npu.filename() != cpu.filename()
    # The test Hub keeps the scan's flips on the CPU: MambaIR stages fall back in part, attention stages not.
    layers = json.loads((tmp_path / "aihub-profile--Snapdragon 8 Elite QRD--tflite--npu--16x16.json").read_text())
    assert layers["layers"]["encoder1--R"]["placement"]["cpu_fallback_share"] == 0
    assert 0 < layers["layers"]["encoder1--M1"]["placement"]["cpu_fallback_share"] < 0.1
    assert 0 < npu.placement["cpu_fallback_share"] < 0.1 and npu.placement["units"]["NPU"] > 100
    with pytest.raises(AIHubError, match="unknown compute unit 'tpu'"):
        hub_table(tmp_path, "Snapdragon 8 Elite", compute_unit="tpu")


def test_the_job_count_is_said_before_submitting_and_bounded_by_max_jobs(hub, tmp_path) -> None:
    said = []
    with pytest.raises(AIHubError, match="would submit 34 AI Hub jobs, more than --max-jobs 10"):
        hub_table(tmp_path, "Snapdragon 8 Elite", max_jobs=10)
    assert hub.submitted == []  # refused before anything was paid for
    hub_table(tmp_path, "Snapdragon 8 Elite", max_jobs=34, progress=said.append)
    assert said[0] == "the latency table: 34 new AI Hub jobs to submit (0 recorded)"
    said.clear()
    hub_table(tmp_path, "Snapdragon 8 Elite", max_jobs=0, progress=said.append)
    assert said[0] == "the latency table: 0 new AI Hub jobs to submit (34 recorded)"


def test_failed_and_timed_out_jobs_are_recorded_and_the_rest_collected(hub, tmp_path) -> None:
    hub.fail_jobs = {"latent--M1": "Compilation failed: Op SelectiveScan not supported on HTP"}
    hub.slow_jobs = {"encoder1--M1"}
    hub.steps_to_finish = 1  # every other job is done at its first status check; the slow one times out
    with pytest.raises(
        ProfileError, match="2 of 17 AI Hub jobs.*encoder1--M1.*still OPTIMIZING.*latent--M1.*not supported"
    ):
        hub_table(tmp_path, "Samsung Galaxy S25", hub_timeout=0)
    detail = json.loads((tmp_path / "aihub-profile--Samsung Galaxy S25--tflite--cpu--16x16.json").read_text())
    assert len(detail["measured"]) == 15 and set(detail["failures"]) == {"latent--M1", "encoder1--M1"}
    ledger = json.loads((tmp_path / LEDGER).read_text())["jobs"]
    assert ledger["compile--Samsung Galaxy S25--tflite--cpu--16x16--latent--M1"]["state"] == "FAILED"

    hub.fail_jobs, hub.slow_jobs = {}, set()
    slow = next(job for job in hub.submitted if "encoder1--M1" in job.name)
    slow._states = iter([State.SUCCESS])  # the slow compile finishes while nobody was waiting
    before = len(hub.submitted)
    table = hub_table(tmp_path, "Samsung Galaxy S25")
    # New: the failed compile again and its profile, and the profile of the compile that finished late.
    assert len(hub.submitted) - before == 3
    assert not any(job.kind == "compile" and "encoder1--M1" in job.name for job in hub.submitted[before:])
    assert table.stages["latent"]["M1"].samples == 5


def test_profile_cli_rejects_an_unknown_device(hub, tmp_path) -> None:
    from typer.testing import CliRunner

    from edgeens.cli import app

    result = CliRunner().invoke(
        app, ["profile", "--preset", "tiny", "--device", "Pixel 9", "--programs", str(tmp_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no device 'Pixel 9'" in result.output
    result = CliRunner().invoke(
        app,
        ["profile", "--preset", "tiny", "--device", "Samsung Galaxy S25", "--validate", "30"]
        + ["--validate-programs", "linked", "--programs", str(tmp_path), "--out", str(tmp_path)],
    )
    assert result.exit_code == 2 and "on AI Hub use lowered" in result.output
    assert hub.submitted == []


def test_validation_on_the_hub_measures_whole_architectures_and_reports_the_fit(hub, tmp_path) -> None:
    from typer.testing import CliRunner

    from edgeens.cli import app

    teacher = tmp_path / "nano.safetensors"
    save_file({k: v.contiguous() for k, v in nano_teacher().state_dict().items()}, str(teacher))
    # Gated-conv stages: they export in a fraction of the time of MambaIR's unrolled scans (the path is the same).
    args = ["profile", "--teacher", str(teacher), "--families", "G", "--size", "16", "--device", "Snapdragon 8 Elite"]
    args += ["--validate", "4", "--programs", str(tmp_path / "programs"), "--out", str(tmp_path / "profiles")]
    args += ["--reports", str(tmp_path / "reports"), "--hub-poll", "0"]
    result = CliRunner().invoke(app, [*args, "--max-jobs", "20"])
    assert result.exit_code == 2 and "would submit 34 AI Hub jobs, more than --max-jobs 20" in result.output
    assert hub.submitted == []
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    whole = [job for job in hub.submitted if "whole" in job.name]
    assert len(whole) == 8 and {job.kind for job in whole} == {"compile", "profile"}
    assert type(whole[0].model).__name__ == "ExportedProgram" and whole[0].input_spec[0] == (1, 3, 16, 16)
    report = json.loads(
        (tmp_path / "reports" / "validation--snapdragon-8-elite-qrd--aihub-tflite-cpu--16x16--nano-g.json").read_text()
    )
    assert report["architectures"] == 4 and -1 <= report["calibrated"]["spearman"] <= 1
    assert all(row["measured_ms"] > 0 for row in report["rows"])
    assert (tmp_path / "reports" / "validation--snapdragon-8-elite-qrd--aihub-tflite-cpu--16x16--nano-g.png").is_file()
    before = len(hub.submitted)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(hub.submitted) == before  # the re-run collects every recorded job
