"""A converged model fine-tuned briefly: what each fine-tuning recipe costs the embedded teacher before it helps.

    python benchmarks/finetune_teacher.py [--iterations 100] [--variants demo,warm-up,...]

The embedded denoising teacher (edgeens/assets/) fine-tuned in a temporary folder with variants of the fine-tuning
recipe (edgeens.train.finetune.finetune_recipe: the learning rate, a linear warm-up, the patches), one thread,
scored on the catalogue's whole **validation** photos (never the test photos) before and after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from edgeens.data.task import TaskData
from edgeens.models import Restormer
from edgeens.run import EMBEDDED_TEACHERS
from edgeens.train.finetune import FinetunePatches, finetune_recipe
from edgeens.train.loop import Training, TrainingRecipe, train_restoration, validation_psnr


def variants(iterations: int) -> dict[str, TrainingRecipe]:
    """The recipes compared, by name (warm-up over the first 10% where named)."""
    large = FinetunePatches(128, 64, 4096)  # make demo-full's patches
    return {
        "lr 3e-4, patches 16-64, no warm-up": replace(finetune_recipe(iterations), warmup=0),
        "lr 3e-4, patches 16-64, warm-up": replace(finetune_recipe(iterations), warmup=iterations // 10),
        "lr 1e-4, patches 16-64, no warm-up": replace(finetune_recipe(iterations, lr=1e-4), warmup=0),
        "lr 3e-4, patches 64-128, no warm-up": replace(finetune_recipe(iterations, large), warmup=0),
        "lr 3e-4, patches 64-128, warm-up": replace(finetune_recipe(iterations, large), warmup=iterations // 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--variants", default="", help="Comma-separated names (default: all).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = TaskData(source="catalogue")
    validation = task.teacher_validation()
    path = EMBEDDED_TEACHERS[("gaussian_noise", 25.0)]
    before = validation_psnr(Restormer.from_checkpoint(path).eval(), validation)
    print(f"embedded teacher as trained: {before:.3f} dB on the whole val photos (1 thread)", flush=True)
    recipes = variants(args.iterations)
    for name in [v for v in args.variants.split(",") if v] or list(recipes):
        model = Restormer.from_checkpoint(path)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            training = Training(model, task.training(), recipes[name], Path(folder), lambda *_: None, label=name)
            train_restoration(training, show_progress=False)
        after = validation_psnr(model.eval(), validation)
        print(
            f"{name:38} {args.iterations} iterations: {after:.3f} dB ({after - before:+.3f}), "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
