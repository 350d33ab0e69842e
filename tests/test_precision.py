"""edgeens precision: every precision compiled, scored on the task's test photos and timed, at toy size."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.models import Restormer
from tests.data.layouts import make_layout


@pytest.mark.slow
def test_precision_table_scores_and_times_every_program(tmp_path) -> None:
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()
    checkpoint = tmp_path / "micro.safetensors"
    save_file(model.state_dict(), str(checkpoint))
    data = make_layout(tmp_path / "pairs", "restormer", count=10)
    out = tmp_path / "precision"
    args = ["precision", str(checkpoint), "--data", str(data), "--size", "32", "--out", str(out)]
    # ExecuTorch's w8a8 lowering is covered by tests/compile/test_pipeline.py (and takes a minute here): one
    # runtime with all three precisions, plus ExecuTorch's float program, keeps this test short
    sensitivity = ["--sensitivity", "--stages", "encoder1,latent"]
    result = CliRunner().invoke(app, [*args, "--calibration-images", "4", "--runtimes", "onnxruntime", *sensitivity])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "precision.json").read_text())
    rows = {(r["runtime"], r["precision"]): r for r in table["rows"]}
    assert set(rows) == {("eager", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "w8a8"), ("onnxruntime", "w8a16")}
    eager = rows[("eager", "fp32")]["psnr"]
    assert rows[("onnxruntime", "fp32")]["psnr"] == pytest.approx(eager, abs=0.01)  # float restores as eager does
    assert rows[("onnxruntime", "fp32")]["speedup"] == pytest.approx(1.0)
    for key in (("onnxruntime", "w8a8"), ("onnxruntime", "w8a16")):
        assert rows[key]["ms"] > 0 and rows[key]["speedup"] > 0
        assert abs(rows[key]["psnr_vs_float"]) < 3  # quantized, but still the same restoration
    assert abs(rows[("onnxruntime", "w8a16")]["psnr_vs_float"]) <= abs(rows[("onnxruntime", "w8a8")]["psnr_vs_float"])
    assert "| onnxruntime | w8a8 |" in (out / "precision.md").read_text()
    assert "test" not in table["calibration"] and "training split" in table["calibration"]
    stages = json.loads((out / "sensitivity.json").read_text())["rows"]
    assert [r["quantized"] for r in stages] == ["none (float)", "encoder1", "latent", "these stages"]
    assert stages[0]["drop"] == 0 and stages[0]["psnr"] == pytest.approx(eager, abs=0.01)
    assert all(r["psnr"] != stages[0]["psnr"] for r in stages[1:])  # each plan quantized something
    assert stages[1]["modules"] == ["encoder_level1"] and stages[3]["modules"] == ["encoder_level1", "latent"]
    assert "| latent |" in (out / "precision.md").read_text()


def test_unknown_precision_is_one_clear_error(tmp_path) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "micro.safetensors"
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    save_file(model.state_dict(), str(checkpoint))
    result = CliRunner().invoke(app, ["precision", str(checkpoint), "--precisions", "w4a8", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown precision 'w4a8'" in result.output
    assert "Traceback" not in result.output
    nothing = CliRunner().invoke(app, ["precision", str(checkpoint), "--no-table", "--out", str(tmp_path)])
    assert nothing.exit_code == 2 and "add --sensitivity" in nothing.output
    stage = CliRunner().invoke(app, ["precision", str(checkpoint), "--float-stages", "middle", "--out", str(tmp_path)])
    assert stage.exit_code == 2 and "unknown stage middle" in stage.output, stage.output


def test_executorch_offers_no_w8a16_program() -> None:
    from edgeens.precision import PrecisionRequest

    request = PrecisionRequest(torch.nn.Identity(), "x", None, None)  # type: ignore[arg-type]
    assert ("executorch", "w8a16") not in request.programs()  # XNNPACK has no 16-bit activations
    assert {("executorch", "w8a8"), ("onnxruntime", "w8a16")} <= set(request.programs())


@pytest.mark.slow
def test_qat_rows_join_the_table_when_post_training_w8a8_loses_more_than_the_threshold(tmp_path) -> None:
    from edgeens.data.task import DataRequest, open_task
    from edgeens.precision import PrecisionRequest, compare_precisions
    from edgeens.profile.request import TimingPolicy
    from edgeens.train.qat import QATRecipe

    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()
    data = make_layout(tmp_path / "pairs", "restormer", count=10)
    task = open_task(tmp_path / "out", DataRequest(data=data, min_side=32), say=lambda _: None)
    quick = TimingPolicy(rounds=1, min_repeats=2, max_repeats=3, max_seconds=1.0, min_samples=2)
    qat = QATRecipe(iterations=4, patch=32, batch=2, threshold_db=-100.0)  # any loss at all runs it
    request = PrecisionRequest(
        model,
        "micro",
        task,
        tmp_path / "out",
        size=32,
        precisions=("fp32", "w8a8"),
        runtimes=("onnxruntime",),
        calibration_images=2,
        qat=qat,
        policy=quick,
    )
    table = compare_precisions(request, say=lambda _: None)
    rows = {(r["runtime"], r["precision"]): r for r in table["rows"]}
    assert ("onnxruntime", "w8a8-qat") in rows and table["qat"].startswith("run")
    assert "speedup" in rows[("onnxruntime", "w8a8-qat")] and "psnr_vs_float" in rows[("onnxruntime", "w8a8-qat")]
    within = QATRecipe(iterations=4, patch=32, batch=2, threshold_db=100.0)  # no loss is large enough
    skipped = compare_precisions(replace(request, folder=tmp_path / "out2", qat=within), say=lambda _: None)
    assert skipped["qat"].startswith("not run") and not any(r["precision"].endswith("qat") for r in skipped["rows"])
