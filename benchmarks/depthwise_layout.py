"""Why the teacher's training step does not gain from channels_last: its depthwise 3x3 convolutions run several times
faster on an NHWC tensor, but every change of layout is a transposed copy that costs more than they save.

    python benchmarks/depthwise_layout.py [--threads 1] [--repeats 20] [--json benchmarks/results/depthwise-layout.json]

On the tiny teacher's training shapes (batch 8 of 32-px crops; the decoder1/refinement GDFN's 170 hidden channels,
MDTA's 96), each timed in alternating rounds in one process (median ms over rounds):
- the depthwise convolution's forward, and forward + backward, on an NCHW tensor and on a channels_last one;
- the conversion NCHW -> channels_last against a plain copy of the same tensor;
- the whole GDFN block (FeedForward) forward + backward as edgeens trains it (NCHW) and in an NHWC form (1x1
  convolutions as matmuls that leave their output channels-last, the depthwise convolution there, chunk for the
  gate), after checking that both give the same output and gradients.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeens.models.restormer import FeedForward
from edgeens.workers import set_threads

CHANNELS_LAST = torch.channels_last


def gdfn_nhwc(block: FeedForward, x: Tensor) -> Tensor:
    """FeedForward's forward with its hidden activations channels-last (no bias: the presets have none)."""
    b, c, h, w = x.shape
    hidden = torch.matmul(x.flatten(2).transpose(1, 2), block.project_in.weight.flatten(1).t())
    hidden = block.dwconv(hidden.view(b, h, w, -1).permute(0, 3, 1, 2))
    gate, value = hidden.chunk(2, dim=1)
    mixed = (F.gelu(gate) * value).permute(0, 2, 3, 1).reshape(b, h * w, -1).transpose(1, 2)
    return torch.matmul(block.project_out.weight.flatten(1), mixed).view(b, c, h, w)


def rounds(cases: dict[str, Callable[[], object]], repeats: int, count: int = 5) -> dict[str, float]:
    """Median ms per call of each case, its calls timed in `count` rounds that alternate the cases."""
    for run in cases.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(count):
        for name, run in cases.items():
            started = time.perf_counter()
            for _ in range(repeats):
                run()
            samples[name].append((time.perf_counter() - started) / repeats * 1000)
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


def depthwise(shape: tuple[int, int, int, int], repeats: int) -> dict[str, float]:
    channels = shape[1]
    weight = torch.randn(channels, 1, 3, 3, requires_grad=True)
    nchw = torch.randn(*shape, requires_grad=True)
    nhwc = nchw.detach().contiguous(memory_format=CHANNELS_LAST).requires_grad_()
    grad = torch.randn(*shape)
    grad_nhwc = grad.contiguous(memory_format=CHANNELS_LAST)

    def forward(x: Tensor) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                F.conv2d(x, weight, padding=1, groups=channels)

        return run

    def training(x: Tensor, g: Tensor) -> Callable[[], object]:
        return lambda: F.conv2d(x, weight, padding=1, groups=channels).backward(g)

    return rounds(
        {
            "forward NCHW": forward(nchw),
            "forward channels_last": forward(nhwc),
            "forward+backward NCHW": training(nchw, grad),
            "forward+backward channels_last": training(nhwc, grad_nhwc),
            "copy NCHW -> channels_last": lambda: nchw.detach().contiguous(memory_format=CHANNELS_LAST),
            "plain copy": lambda: nchw.detach().clone(),
        },
        repeats,
    )


def gdfn(dim: int, shape: tuple[int, int, int, int], repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    block = FeedForward(dim, 2.66, bias=False)
    x = torch.randn(*shape, requires_grad=True)
    grad = torch.randn(*shape)
    gradients = []
    for form in (block, lambda t: gdfn_nhwc(block, t)):
        block.zero_grad()
        x.grad = None
        form(x).backward(grad)
        gradients.append([x.grad.clone(), *(p.grad.clone() for p in block.parameters())])
    worst = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(*gradients, strict=True))
    if worst > 1e-4:
        raise SystemExit(f"the NHWC form's gradients differ from the block's (relative {worst:.1e})")
    times = rounds(
        {
            "GDFN forward+backward NCHW": lambda: block(x).backward(grad),
            "GDFN forward+backward NHWC form": lambda: gdfn_nhwc(block, x).backward(grad),
        },
        repeats,
    )
    return {**times, "largest relative gradient difference": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "depthwise": {},
        "gdfn": {},
    }
    for shape in ((8, 170, 32, 32), (8, 96, 32, 32), (8, 340, 8, 8)):
        key = "x".join(map(str, shape))
        record["depthwise"][key] = depthwise(shape, args.repeats)
        print(key, json.dumps(record["depthwise"][key]), flush=True)
    for dim, shape in ((32, (8, 32, 32, 32)), (16, (8, 16, 32, 32))):
        key = f"dim {dim}, input " + "x".join(map(str, shape))
        record["gdfn"][key] = gdfn(dim, shape, args.repeats)
        print(key, json.dumps(record["gdfn"][key]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
