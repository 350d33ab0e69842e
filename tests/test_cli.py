from __future__ import annotations

from typer.testing import CliRunner

from edgeens.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def test_inspect_prints_the_inferred_configuration() -> None:
    result = runner.invoke(app, ["inspect", str(FIXTURES / "restormer_small_dualpixel.state_dict.safetensors")])
    assert result.exit_code == 0, result.output
    assert "Restormer: 1,115,827 parameters" in result.output
    assert "dual_pixel_task = True" in result.output


def test_inspect_reports_a_bad_checkpoint_without_a_traceback(tmp_path) -> None:
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint at all")
    result = runner.invoke(app, ["inspect", str(tmp_path / "broken.pth")])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


def test_demo_writes_images_and_says_the_weights_are_random(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--size", "60"])
    assert result.exit_code == 0, result.output
    assert "randomly initialised" in result.output
    names = {p.name for p in tmp_path.iterdir()}
    assert {"clean.png", "noisy.png", "restored_restormer.png", "restored_mambairunet.png"} <= names
