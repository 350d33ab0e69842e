"""`--device`: what each name means on this machine and under torchrun, the backend that follows it, and the
training precision. CUDA is monkeypatched where a test needs a machine with GPUs (this one has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeens.devices import (
    DeviceError,
    autocast,
    on_device,
    process_group_backend,
    resolve_device,
    resolve_precision,
)

# `python fake_cuda.py ARGS` is `edgeens ARGS` on a machine that reports two CUDA GPUs; each rank writes the backend
# it joined with to $EDGEENS_BACKEND_LOG.rank<N>. Written to a temporary folder: a script run from tests/ would
# have tests/profile shadow the standard library's profile module.
FAKE_CUDA = """\
from __future__ import annotations

import os

import torch
import torch.distributed

torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
_init = torch.distributed.init_process_group


def _recording_init(backend: str | None = None, *args: object, **kwargs: object) -> None:
    with open(f"{os.environ['EDGEENS_BACKEND_LOG']}.rank{os.environ['RANK']}", "w") as log:
        log.write(str(backend))
    _init(backend, *args, **kwargs)


torch.distributed.init_process_group = _recording_init

if __name__ == "__main__":
    from edgeens.cli import app

    app(prog_name="edgeens")
"""


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(" CPU ")
    with pytest.raises(DeviceError, match="sees no CUDA GPU.*--torch-device cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown --torch-device 'gpu'.*auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")


def test_on_a_gpu_machine_auto_and_cuda_name_a_gpu_and_a_missing_index_is_refused(two_gpus) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0) == resolve_device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="2 GPU\\(s\\), cuda:0 .. cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="must be a number"):
        resolve_device("cuda:x")


def test_under_torchrun_each_rank_takes_the_gpu_of_its_local_rank(two_gpus, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1) == resolve_device("auto")
    with pytest.raises(DeviceError, match="every rank on one GPU: give --torch-device cuda"):
        resolve_device("cuda:0")
    assert resolve_device("cpu") == torch.device("cpu")


def test_the_backend_follows_the_device_and_precision_is_bf16_only_on_a_gpu(two_gpus) -> None:
    assert process_group_backend(torch.device("cuda", 1)) == "nccl"
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp32", torch.device("cuda", 0)) == "fp32"
    with pytest.raises(DeviceError, match="unknown --precision 'fp16'"):
        resolve_precision("fp16", torch.device("cpu"))


def test_bf16_autocast_runs_convolutions_in_bf16_and_fp32_leaves_them_alone() -> None:
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.rand(1, 3, 8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32


def test_on_device_puts_the_module_back_where_it_was() -> None:
    class Recorded(torch.nn.Linear):  # records where it is sent (this machine has only its CPU to send it to)
        def to(self, *args: object, **kwargs: object) -> torch.nn.Module:
            moves.append(args[0])
            return self

    moves: list[object] = []
    module = Recorded(2, 2)
    with on_device(module, torch.device("cuda", 1)) as moved:
        assert moved is module and moves == [torch.device("cuda", 1)]
    assert moves == [torch.device("cuda", 1), torch.device("cpu")]


@pytest.mark.slow
def test_torchrun_on_a_machine_with_gpus_trains_over_gloo_when_the_cpu_is_asked(tmp_path: Path) -> None:
    """Before the backend followed the device, a machine reporting CUDA made every rank join with nccl while its
    tensors stayed on the CPU (on this CPU build of torch: "NCCL not built in"): the fake GPUs reproduce that."""
    torchrun = Path(sys.executable).parent / "torchrun"
    helper = tmp_path / "fake_cuda.py"
    helper.write_text(FAKE_CUDA)
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", str(helper), "teacher", "--torch-device", "cpu"]
    cmd += ["--bundled", "--iterations", "3", "--max-patch", "16", "--out", str(tmp_path / "teacher")]
    backend_log = tmp_path / "backend"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGEENS_BACKEND_LOG": str(backend_log)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(tmp_path / f"backend.rank{r}").read_text() for r in (0, 1)] == ["gloo", "gloo"]
    summary = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert summary["ranks"] == 2 and summary["device"] == "cpu" and summary["recipe"]["precision"] == "fp32"
