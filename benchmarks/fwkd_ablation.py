"""The paper's FwKD ablation, in direction: test PSNR of the all-MambaIR hybrid assembled from distilled
surrogates versus the same architecture with untrained surrogates (and the teacher, for reference).

    python benchmarks/fwkd_ablation.py --teacher RUN/teacher/teacher.safetensors --pool RUN/pool [--sigma 25]

Scored on the photo catalogue's whole test photos (`make photos`; never trained, validated or tuned on), each
restored in 256x256 tiles as `edgeens restore` does it (the eager MambaIR stacks' memory stays bounded). 1 thread.
`--json` writes the rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from edgeens.data.photos import degraded_pairs
from edgeens.metrics import psnr
from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.models.space import SearchSpace, format_architecture
from edgeens.restore import eager_restorer, restore_array
from edgeens.train.pool import load_pool


def score_on_test(model: torch.nn.Module, pairs: list) -> float:
    restorer = eager_restorer(model, "model")
    return sum(psnr(restore_array(restorer, lq, 256, 32), gt) for lq, gt in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--degradation", default="gaussian_noise")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    teacher = Restormer.from_checkpoint(args.teacher)
    pool = load_pool(args.pool, teacher)
    architecture = SearchSpace(teacher.config).mamba_only
    test = list(degraded_pairs("test", args.degradation, args.sigma).values())
    noisy = sum(psnr(lq.clip(0, 1), gt) for lq, gt in test) / len(test)
    torch.manual_seed(0)
    models = {
        "teacher": lambda: teacher,
        f"{format_architecture(architecture)} distilled (FwKD)": lambda: HybridUNet.from_teacher(
            teacher, architecture, surrogates=pool
        ),
        f"{format_architecture(architecture)} untrained surrogates": lambda: HybridUNet.from_teacher(
            teacher, architecture
        ),
    }
    print(f"test PSNR (dB), {len(test)} whole test photos, {args.degradation} sigma={args.sigma:g}, 1 thread")
    # Each row prints as it finishes: the eager MambaIR rows take minutes each on one thread.
    rows = [("degraded input", noisy)]
    print(f"  {'degraded input':<45} {noisy:7.2f}", flush=True)
    for name, build in models.items():
        started = time.perf_counter()
        value = score_on_test(build(), test)
        rows.append((name, value))
        print(f"  {name:<45} {value:7.2f}   ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"teacher": str(args.teacher), "pool": str(args.pool), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
