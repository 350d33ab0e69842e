"""The paper's FwKD ablation, in direction: validation PSNR of the all-MambaIR hybrid assembled from distilled
surrogates versus the same architecture with untrained surrogates (and the teacher, for reference).

    python benchmarks/fwkd_ablation.py --teacher RUN/teacher/teacher.safetensors --pool RUN/pool [--sigma 25]

Validation: fixed degraded centre crops of the held-out bundled photographs (edgeens.train.teacher). 1 thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.models.space import SearchSpace, format_architecture
from edgeens.train.distill import load_pool
from edgeens.train.teacher import bundled_validation, validation_psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--degradation", default="gaussian_noise")
    parser.add_argument("--sigma", type=float, default=25.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    teacher = Restormer.from_checkpoint(args.teacher)
    pool = load_pool(args.pool, teacher)
    architecture = SearchSpace(teacher.config).mamba_only
    validation = bundled_validation(args.degradation, args.sigma)
    noisy = sum(validation_psnr(torch.nn.Identity(), [(lq.clip(0, 1), gt)]) for lq, gt in validation) / len(validation)
    torch.manual_seed(0)
    rows = [
        ("degraded input", noisy),
        ("teacher", validation_psnr(teacher, validation)),
        (
            f"{format_architecture(architecture)} distilled (FwKD)",
            validation_psnr(HybridUNet.from_teacher(teacher, architecture, surrogates=pool), validation),
        ),
        (
            f"{format_architecture(architecture)} untrained surrogates",
            validation_psnr(HybridUNet.from_teacher(teacher, architecture), validation),
        ),
    ]
    print(f"validation PSNR (dB), {len(validation)} held-out photos, {args.degradation} sigma={args.sigma:g}, 1 thread")
    for name, value in rows:
        print(f"  {name:<45} {value:7.2f}")


if __name__ == "__main__":
    main()
