"""The Android demo app: its offline check (android_app/check.sh), the compile target that feeds it, and the APK
built offline (android_app/build_apk.sh) with its static checks (android_app/verify_apk.sh)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[Restormer, Path, list[str], str]:
    """A small model bundled the way a user bundles one, into a copy of the app's layout (the real assets stay
    untouched): (model, app copy, the compile command's arguments, its output)."""
    root = tmp_path_factory.mktemp("android")
    torch.manual_seed(0)
    teacher = Restormer(**SMALL).eval()
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(root / "small.safetensors"))
    fake_app = root / "app-copy"
    (fake_app / "app" / "src" / "main").mkdir(parents=True)
    (fake_app / "app" / "src" / "main" / "AndroidManifest.xml").write_text("<manifest/>")
    args = ["compile", str(root / "small.safetensors"), "--size", "16", "--out", str(root / "out")]
    result = runner.invoke(app, [*args, "--target", "android-assets", "--android-app", str(fake_app)])
    assert result.exit_code == 0, result.output
    return teacher, fake_app, args, result.output


@pytest.mark.slow
def test_compile_bundles_a_checked_program_into_the_app(bundled, tmp_path) -> None:
    _, fake_app, args, _ = bundled
    models = fake_app / "app" / "src" / "main" / "assets" / "models"
    description = json.loads((models / "restormer.json").read_text())
    assert description["input"] == {"height": 16, "width": 16, "channels": 3, "layout": "NCHW RGB [0,1]"}
    assert description["runtime"] == "onnxruntime" and description["opset"] == 18
    assert (models / description["model"]).stat().st_size > 1000 and description["model"].endswith(".onnx")
    compiled = json.loads((Path(args[-1]) / "compile.json").read_text())
    assert compiled["targets"]["onnx"]["verification"]["max_abs_error"] < 1e-4  # checked before bundling
    assert "executorch" not in compiled["targets"]  # the app runs the ONNX export only
    missing = runner.invoke(app, [*args, "--target", "android-assets", "--android-app", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "is not the edgeens Android app" in " ".join(missing.output.split())
    assert "compiling" not in missing.output  # refused before any lowering


def _run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=900, **kwargs)


@pytest.mark.slow
def test_apk_builds_offline_passes_its_static_checks_and_its_runtime_runs_the_model(bundled, tmp_path) -> None:
    teacher, fake_app, _, _ = bundled
    assets = fake_app / "app" / "src" / "main" / "assets"
    apk = tmp_path / "demo.apk"

    built = _run("bash", str(APP / "build_apk.sh"), str(apk), str(assets))
    assert built.returncode == 0, built.stdout + built.stderr[-4000:]
    assert apk.stat().st_size > 5_000_000  # ONNX Runtime's arm64 library is most of it

    verified = _run("bash", str(APP / "verify_apk.sh"), str(apk))
    assert verified.returncode == 0, verified.stdout
    checks = dict(line.split(": ", 1) for line in verified.stdout.strip().splitlines())
    assert checks == dict.fromkeys(["signature", "alignment", "badging", "contents", "dex", "libraries"], "ok")

    # The checks can fail: the same APK without its signature, and a library entry that is not AArch64.
    unsigned = tmp_path / "unsigned.apk"
    unsigned.write_bytes(apk.read_bytes())
    assert _run("zip", "-q", "-d", str(unsigned), "META-INF/*").returncode == 0
    broken = _run("bash", str(APP / "verify_apk.sh"), str(unsigned))
    assert broken.returncode >= 1 and "signature: FAIL" in broken.stdout, broken.stdout

    # The APK's runtime is ONNX Runtime 1.29.0; the same version's host build runs the bundled model like PyTorch.
    tools = Path(os.environ.get("EDGEENS_ANDROID_TOOLS", Path.home() / ".cache" / "edgeens" / "android"))
    probe = (
        "import sys, numpy as np, onnxruntime as ort; "
        "x = np.load(sys.argv[2]); s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']); "
        "np.save(sys.argv[3], s.run(None, {s.get_inputs()[0].name: x})[0]); print(ort.__version__)"
    )
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "x.npy", x.numpy())
    ran = _run(
        sys.executable,
        "-c",
        probe,
        str(assets / "models" / "restormer.onnx"),
        str(tmp_path / "x.npy"),
        str(tmp_path / "y.npy"),
        env={**os.environ, "PYTHONPATH": str(tools / "onnxruntime-1.29.0" / "python")},
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "1.29.0", ran.stdout + ran.stderr[-2000:]
    with torch.no_grad():
        expected = teacher(x).numpy()
    assert np.abs(np.load(tmp_path / "y.npy") - expected).max() < 1e-4
