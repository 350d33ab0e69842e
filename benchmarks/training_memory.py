"""Peak memory of fine-tuning a tiny-preset MambaIR hybrid, like the compare step's heaviest worker.

    python benchmarks/training_memory.py [--iterations 20]

Runs the fine-tuning recipe's first iterations (batch 8 of 24x24 crops of the photo catalogue's train split) in
this process, 1 thread, and prints wall, user and system time and the peak resident memory. Run it again with
EDGEENS_KEEP_ALLOCATOR=1 to leave glibc's allocator at its defaults. 2026-12-01, 2-core EPYC VM: 7.84 GB before the
scan recomputed in the backward pass (one other process running), 2.54 GB after (idle: 93 s wall, 0.9 s system)."""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from edgeens import allocator
from edgeens.data.photos import training_photos
from edgeens.data.synthetic import SyntheticPairs
from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.models.space import PRESETS, parse_families
from edgeens.train.finetune import finetune_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--architecture", default="M2-M2-M2-M2-M2-M2-M2-M2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher = Restormer(**PRESETS["tiny"].to_dict())
    model = HybridUNet(teacher.config, args.architecture, families=parse_families("M,S,G")).train()
    recipe = finetune_recipe(1500)
    data = SyntheticPairs(training_photos(), "gaussian_noise", 25.0)
    optimizer = torch.optim.AdamW(model.parameters())
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    for iteration in range(1, args.iterations + 1):
        patch, batch = recipe.schedule.at(iteration, recipe.iterations)
        lq, gt = (torch.from_numpy(a) for a in data.sample(patch, batch, np.random.default_rng(iteration)))
        loss = F.l1_loss(model(lq), gt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{args.architecture}, {args.iterations} iterations at batch {batch} of {patch}x{patch}, 1 thread, "
        f"allocator settings {'on' if allocator.STATE['applied'] else 'off'}: "
        f"wall {time.perf_counter() - start:.1f} s, "
        f"user {after.ru_utime - before.ru_utime:.1f} s, system {after.ru_stime - before.ru_stime:.1f} s, "
        f"peak RSS {after.ru_maxrss / 1e6:.2f} GB"
    )


if __name__ == "__main__":
    main()
