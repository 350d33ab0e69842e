"""Where edgeens' own PyTorch work runs: `--torch-device auto|cpu|cuda[:N]`, the process group's backend that follows
the device (nccl for GPUs, gloo for CPUs), and the precision training runs in.

Under torchrun every rank takes the GPU of its LOCAL_RANK; `auto` is the GPU when torch sees one. Mixed precision
is bf16 autocast on GPUs that support it (the selective scan accumulates in fp32 inside, as mamba_ssm does) and
fp32 everywhere else; the precision is part of a training recipe, so a run records it and resumes only under it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from edgeens.errors import EdgeensError

DEVICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("auto", "fp32", "bf16")


class DeviceError(EdgeensError):
    """A device or precision that this machine (or this torch build) does not have."""


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device `--torch-device NAME` means here: `auto` is the GPU when torch sees one, else the CPU; under
    torchrun `cuda` is the GPU of this rank's LOCAL_RANK. A device the machine lacks is refused with the fix."""
    text = name.strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text != "cuda" and not text.startswith("cuda:"):
        raise DeviceError(f"unknown --torch-device {name!r}: give {DEVICES}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(
            f"--torch-device {name}: torch {torch.__version__} ({build}) sees no CUDA GPU on this machine; "
            "use --torch-device cpu (or auto), or install a CUDA build of torch"
        )
    count = torch.cuda.device_count()
    if text == "cuda":
        index = int(os.environ.get("LOCAL_RANK", "0")) if _world_size() > 1 else 0
    else:
        if _world_size() > 1:
            raise DeviceError(
                f"--torch-device {name} under torchrun would put every rank on one GPU: give --torch-device cuda "
                "(each rank takes the GPU of its LOCAL_RANK)"
            )
        suffix = text.split(":", 1)[1]
        if not suffix.isdigit():
            raise DeviceError(f"--torch-device {name}: the GPU index must be a number (cuda:0 .. cuda:{count - 1})")
        index = int(suffix)
    if index >= count:
        raise DeviceError(f"--torch-device {name}: this machine has {count} GPU(s), cuda:0 .. cuda:{count - 1}")
    return torch.device("cuda", index)


def process_group_backend(device: torch.device) -> str:
    """The torch.distributed backend for ranks whose tensors live on `device`: nccl moves GPU tensors only and
    gloo CPU ones, so the backend follows the device, not whether the machine happens to have a GPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def resolve_precision(precision: str, device: torch.device) -> str:
    """`--precision auto|fp32|bf16` on `device`: auto is bf16 on a GPU that supports it, fp32 elsewhere. On a CPU
    with AVX512-BF16, bf16 autocast speeds the teacher's step 1.2-1.35x but not the scanning hybrids' (measured in
    docs/measurements.md), and CPUs without it run it slower: a user asks for it."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown --precision {precision!r}: give {', '.join(PRECISIONS)}")
    bf16_here = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return "bf16" if bf16_here else "fp32"
    if precision == "bf16" and device.type == "cuda" and not bf16_here:
        raise DeviceError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp32")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's precision: bf16 autocast for "bf16" (matmuls and convolutions in bf16, reductions and
    the loss in fp32), nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's parameters live on (the CPU for a module without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def on_device(module: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """`module` moved to `device` for the block and back to where it was after: a step's work runs on its device
    once, and the model a caller holds afterwards is where the caller left it."""
    home = module_device(module)
    module.to(device)
    try:
        yield module
    finally:
        module.to(home)
