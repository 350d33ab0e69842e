"""`edgeens demo`: restore a bundled photograph end to end with small, randomly initialised models.

Until the pipeline lands this shows the plumbing only (image in, padding, both architectures, image out); the
weights are random, so the "restored" image is not better than the noisy one, and the demo says so."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from edgeens.data.bundled import bundled_photo
from edgeens.data.images import write_image
from edgeens.metrics import psnr
from edgeens.models import MambaIRUNet, Restormer, pad_to_multiple


def sample_photo(size: int = 256) -> np.ndarray:
    """A centre crop of the bundled 'astronaut' photograph (public domain), float32 HWC in [0, 1]."""
    image = bundled_photo("astronaut")
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def run_demo(out_dir: Path, size: int = 250, sigma: float = 25.0, seed: int = 0) -> list[dict]:
    """Add Gaussian noise to the sample photo, run a small Restormer and MambaIRUNet on it, write PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    clean = sample_photo(size)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape).astype(np.float32)
    write_image(out_dir / "clean.png", clean)
    write_image(out_dir / "noisy.png", noisy)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None]
    x, (h, w) = pad_to_multiple(x, 8)  # the sample size need not be a multiple of 8
    models = {
        "restormer": Restormer(dim=16, num_blocks=[1, 1, 2, 2], num_refinement_blocks=1),
        "mambairunet": MambaIRUNet(dim=32, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, mlp_ratio=1.5),
    }
    results = [{"model": "noisy input", "psnr": psnr(noisy, clean), "seconds": 0.0}]
    for name, model in models.items():
        start = time.perf_counter()
        with torch.no_grad():
            restored = model.eval()(x)[0, :, :h, :w].permute(1, 2, 0).numpy()
        seconds = time.perf_counter() - start
        write_image(out_dir / f"restored_{name}.png", restored)
        results.append(
            {
                "model": name,
                "psnr": psnr(restored, clean),
                "seconds": seconds,
                "params": sum(p.numel() for p in model.parameters()),
            }
        )
    return results
