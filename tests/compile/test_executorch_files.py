"""Damaged `.pte` files are named before ExecuTorch's loader sees them (it aborts the process on some)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.compile.artifact import CompileError
from edgeens.compile.executorch import lower_to_executorch, read_program


def image_model() -> torch.nn.Module:
    """One 3x3 convolution, image in, image out: what the damage is done to matters, not the model (it lowers in
    a second where a Restormer takes a minute)."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 3, 3, padding=1).eval()


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("pte") / "micro.pte"
    lower_to_executorch(image_model(), (torch.rand(1, 3, 16, 16),)).save(path)
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"", "is empty"),
        (lambda data: np.random.default_rng(0).bytes(4096), "is not an ExecuTorch program"),
        (lambda data: data[: len(data) // 2], "is truncated"),
    ],
)
def test_a_damaged_program_is_named_and_restore_exits_cleanly(program, tmp_path, damage, message) -> None:
    assert read_program(program) == program.read_bytes()
    bad = tmp_path / "bad.pte"
    bad.write_bytes(damage(program.read_bytes()))
    with pytest.raises(CompileError, match=message):
        read_program(bad)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "x.png")
    args = ["restore", str(tmp_path / "x.png"), "--model", str(bad), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in " ".join(result.output.split()) and "edgeens compile" in result.output


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from edgeens.compile.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "micro.onnx"
    export_onnx(image_model(), (torch.rand(1, 3, 16, 16),), path)
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"", "is empty"),
        (lambda data: np.random.default_rng(0).bytes(4096), "is not a readable ONNX model"),
        (lambda data: data[: len(data) // 2], "is not a readable ONNX model"),
    ],
)
def test_a_damaged_onnx_model_is_named_with_the_fix(onnx_model, tmp_path, damage, message) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(damage(onnx_model.read_bytes()))
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "x.png")
    args = ["restore", str(tmp_path / "x.png"), "--model", str(bad), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and message in text and "edgeens compile" in text, result.output
    assert "Traceback" not in result.output and "[ONNXRuntimeError]" not in result.output
