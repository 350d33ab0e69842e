"""The Android demo app's offline check (android_app/check.sh) and the compile target that feeds it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.models.restormer import Restormer

APP = Path(__file__).resolve().parents[1] / "android_app"
SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}
runner = CliRunner()


def test_the_java_core_reproduces_python_restore_exactly(tmp_path) -> None:
    # The Python side of the comparison: edgeens.restore's tiling on the fixture's images and toy models.
    spec = importlib.util.spec_from_file_location("write_fixture", APP / "write_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = module.write_fixture(tmp_path / "fixtures")
    assert len(cases) >= 4
    # The Java side: check.sh compiles the app against android.jar and ExecuTorch's API, then runs JUnit,
    # PythonFixtureTest included, on that fixture.
    result = subprocess.run(
        ["bash", str(APP / "check.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "EDGEENS_FIXTURES": str(tmp_path / "fixtures")},
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    match = re.fullmatch(r"(\d+) passed, (\d+) failed", summary)
    assert match and int(match.group(1)) >= 9 and match.group(2) == "0", summary
    assert "everyFixtureCaseIsReproducedExactly() ✔" in result.stderr


@pytest.mark.slow
def test_compile_bundles_a_checked_program_into_the_app(tmp_path) -> None:
    torch.manual_seed(0)
    teacher = Restormer(**SMALL).eval()
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(tmp_path / "small.safetensors"))
    fake_app = tmp_path / "app-copy"
    (fake_app / "app" / "src" / "main").mkdir(parents=True)
    (fake_app / "app" / "src" / "main" / "AndroidManifest.xml").write_text("<manifest/>")
    args = ["compile", str(tmp_path / "small.safetensors"), "--size", "16", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--target", "android-assets", "--android-app", str(fake_app)])
    assert result.exit_code == 0, result.output
    models = fake_app / "app" / "src" / "main" / "assets" / "models"
    description = json.loads((models / "restormer.json").read_text())
    assert description["input"] == {"height": 16, "width": 16, "channels": 3, "layout": "NCHW RGB [0,1]"}
    assert description["executorch"] and (models / description["program"]).stat().st_size > 1000
    compiled = json.loads((tmp_path / "out" / "compile.json").read_text())
    assert compiled["targets"]["executorch"]["verification"]["max_abs_error"] < 1e-4  # checked before bundling
    missing = runner.invoke(app, [*args, "--target", "android-assets", "--android-app", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "is not the edgeens Android app" in " ".join(missing.output.split())
    assert "compiling" not in missing.output  # refused before any lowering
