from __future__ import annotations

import json

import pytest
import torch

import edgeens.compile.aihub as compile_aihub
from edgeens.compile.aihub import LEDGER
from edgeens.models import Restormer
from edgeens.profile.aihub import hub_latency, profile_on_hub
from edgeens.profile.table import LatencyTable, ProfileError
from tests.compile.fake_qai_hub import PROFILE, FakeHub, State


@pytest.fixture
def hub(tmp_path, monkeypatch) -> FakeHub:
    ini = tmp_path / "client.ini"
    ini.write_text("[api]\napi_token = secret-token\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    fake = FakeHub()
    monkeypatch.setattr(compile_aihub, "import_hub", lambda: fake)
    return fake


def nano_teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()


def test_profile_dict_becomes_milliseconds() -> None:
    latency = hub_latency(PROFILE)
    assert latency.samples == 2 and latency.median_ms == pytest.approx((10.003 + 4.205) / 2)
    legacy = hub_latency({"execution_summary": {"estimated_inference_time": 3652}})
    assert legacy.median_ms == pytest.approx(3.652)
    with pytest.raises(ProfileError, match="neither"):
        hub_latency({"execution_summary": {}})


def test_every_program_is_compiled_and_profiled_and_a_rerun_pays_nothing(hub, tmp_path) -> None:
    hub.profiles = {}
    table = profile_on_hub(nano_teacher(), 16, 16, tmp_path, "Snapdragon 8 Elite", poll_s=0, space_name="nano")
    programs = 1 + 2 * 8  # the fixed part, R and M1 at each of the 8 stages
    kinds = [job.kind for job in hub.submitted]
    assert kinds.count("compile") == programs and kinds.count("profile") == programs
    assert kinds[:programs] == ["compile"] * programs  # all compiles submitted before any wait
    assert table.device == "Snapdragon 8 Elite QRD" and table.runtime == "aihub-tflite"
    assert table.chipset == "qualcomm-snapdragon-8-elite"
    path = table.save(tmp_path / "profiles")
    assert LatencyTable.load(path).stages["latent"]["M1"].median_ms == pytest.approx(7.104)
    detail = json.loads((tmp_path / "aihub-profile--Snapdragon 8 Elite QRD--tflite--16x16.json").read_text())
    assert detail["layers"]["fixed"]["execution_detail"][1]["compute_unit"] == "NPU"

    profile_on_hub(nano_teacher(), 16, 16, tmp_path, "Snapdragon 8 Elite QRD", poll_s=0)
    assert len(hub.submitted) == 2 * programs  # the same jobs, collected again


def test_failed_and_timed_out_jobs_are_recorded_and_the_rest_collected(hub, tmp_path) -> None:
    hub.fail_jobs = {"latent--M1": "Compilation failed: Op SelectiveScan not supported on HTP"}
    hub.slow_jobs = {"encoder1--M1"}
    hub.steps_to_finish = 1  # every other job is done at its first status check; the slow one times out
    with pytest.raises(
        ProfileError, match="2 of 17 AI Hub jobs.*encoder1--M1.*still OPTIMIZING.*latent--M1.*not supported"
    ):
        profile_on_hub(nano_teacher(), 16, 16, tmp_path, "Samsung Galaxy S25", poll_s=0, timeout_s=0)
    detail = json.loads((tmp_path / "aihub-profile--Samsung Galaxy S25--tflite--16x16.json").read_text())
    assert len(detail["measured"]) == 15 and set(detail["failures"]) == {"latent--M1", "encoder1--M1"}
    ledger = json.loads((tmp_path / LEDGER).read_text())["jobs"]
    assert ledger["compile--Samsung Galaxy S25--tflite--16x16--latent--M1"]["state"] == "FAILED"

    hub.fail_jobs, hub.slow_jobs = {}, set()
    slow = next(job for job in hub.submitted if "encoder1--M1" in job.name)
    slow._states = iter([State.SUCCESS])  # the slow compile finishes while nobody was waiting
    before = len(hub.submitted)
    table = profile_on_hub(nano_teacher(), 16, 16, tmp_path, "Samsung Galaxy S25", poll_s=0)
    # New: the failed compile again and its profile, and the profile of the compile that finished late.
    assert len(hub.submitted) - before == 3
    assert not any(job.kind == "compile" and "encoder1--M1" in job.name for job in hub.submitted[before:])
    assert table.stages["latent"]["M1"].samples == 2


def test_profile_cli_rejects_an_unknown_device(hub, tmp_path) -> None:
    from typer.testing import CliRunner

    from edgeens.cli import app

    result = CliRunner().invoke(
        app, ["profile", "--preset", "tiny", "--device", "Pixel 9", "--programs", str(tmp_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no device 'Pixel 9'" in result.output
    result = CliRunner().invoke(
        app, ["profile", "--preset", "tiny", "--device", "Samsung Galaxy S25", "--validate", "30"]
    )
    assert result.exit_code == 2 and "--device host" in result.output
