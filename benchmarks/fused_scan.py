"""The fused scan against the chunked one: mamba_ssm's CUDA kernel and edgeens' chunked scan on the same inputs,
forward and gradients, at SS2D's shapes (4 directions x channels, state 16, grouped B and C, D, delta_bias,
softplus: what MambaIR's SS2D passes).

    python benchmarks/fused_scan.py [--device cuda] [--length 4096] [--channels 96] [--json FILE]

Needs a GPU and `pip install 'edgeens[cuda]'` for the fused kernel; `--against reference` (on any device) checks
the chunked scan against the sequential reference instead. Prints the largest absolute and relative differences
of the output and of every input's gradient, and exits 1 when one exceeds --tolerance (relative, default 1e-3:
both accumulate in fp32, in different orders).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from edgeens.devices import resolve_device
from edgeens.models.scan import selective_scan

INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def scan_inputs(batch: int, channels: int, length: int, state: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random SS2D-like inputs: 4 direction groups of `channels` each, A negative as MambaIR's -exp(A_log)."""
    g = torch.Generator().manual_seed(0)
    directions, d = 4, 4 * channels
    tensors = {
        "u": torch.randn(batch, d, length, generator=g),
        "delta": torch.randn(batch, d, length, generator=g) * 0.5 - 2.0,
        "A": -torch.exp(torch.randn(d, state, generator=g) * 0.5),
        "B": torch.randn(batch, directions, state, length, generator=g),
        "C": torch.randn(batch, directions, state, length, generator=g),
        "D": torch.ones(d),
        "delta_bias": torch.randn(d, generator=g) * 0.1,
    }
    return {k: v.to(device).requires_grad_(True) for k, v in tensors.items()}


def run(impl: str, inputs: dict[str, torch.Tensor], weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scan's output and the gradients of sum(output * weights) with respect to every input."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    y = selective_scan(**leaves, delta_softplus=True, impl=impl)  # type: ignore[arg-type]
    (y * weights).sum().backward()
    return {"output": y.detach()} | {f"grad {k}": leaves[k].grad for k in INPUTS}


def compare_scans(first: str, second: str, inputs: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Largest absolute and relative (to the largest magnitude) difference of the output and each gradient."""
    weights = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1)).to(inputs["u"].device)
    a, b = run(first, inputs, weights), run(second, inputs, weights)
    differences = {}
    for name in a:
        gap = (a[name] - b[name]).abs().max().item()
        differences[name] = {"max_abs": gap, "relative": gap / max(b[name].abs().max().item(), 1e-30)}
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--against", default="cuda", choices=("cuda", "reference"), help="What the chunked scan is checked against."
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=96, help="Channels per direction (the paper's level 1: 96).")
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.against == "cuda" and device.type != "cuda":
        sys.exit("the fused kernel runs on a GPU: give --device cuda, or --against reference on a CPU")
    inputs = scan_inputs(args.batch, args.channels, args.length, args.state, device)
    differences = compare_scans("chunked", args.against, inputs)
    worst = max(v["relative"] for v in differences.values())
    for name, v in differences.items():
        print(f"{name:16} max |diff| {v['max_abs']:.3e}  relative {v['relative']:.3e}")
    verdict = "agree" if worst <= args.tolerance else "DISAGREE"
    print(
        f"chunked vs {args.against} on {device}: {verdict} (worst relative {worst:.3e}, tolerance {args.tolerance:g})"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {"device": str(device), "against": args.against, "args": vars(args), "differences": differences},
                file,
                indent=1,
            )
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
