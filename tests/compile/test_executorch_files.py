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
from tests.compile.test_pipeline import micro_restormer


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("pte") / "micro.pte"
    lower_to_executorch(micro_restormer().eval(), (torch.rand(1, 3, 16, 16),)).save(path)
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
