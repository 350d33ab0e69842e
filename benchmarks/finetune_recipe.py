"""Fine-tuning recipes compared on one run's hybrid: learning rate and distillation from the teacher's output.

    python benchmarks/finetune_recipe.py --run runs/tiny-2x --lr 1e-4 --distill-weight 1 --out /tmp/recipe-a

Composes the architecture (default: the run's fine-tuned best) from the run's teacher and pool, fine-tunes it with
`finetune_recipe(iterations, lr=, distill_weight=)` in `--out` (resumable, 1 thread), and prints the validation
PSNR before and after beside the teacher's. Scores are on the validation crops only: the test photos stay untouched
until a recipe is chosen.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from edgeens.data.photos import training_photos, validation_crops
from edgeens.data.synthetic import SyntheticPairs
from edgeens.models import Restormer
from edgeens.models.hybrid import HybridUNet
from edgeens.rundir import RunFolder
from edgeens.train.finetune import RESULT, FinetunePatches, finetune_recipe, write_hybrid
from edgeens.train.loop import Training, train_restoration, validation_psnr
from edgeens.train.pool import load_pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny-2x"))
    parser.add_argument("--architecture", default="", help="default: the run's fine-tuned best")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--distill-weight", type=float, default=0.0)
    parser.add_argument("--max-patch", type=int, default=64)
    parser.add_argument("--min-patch", type=int, default=0, help="0: Restormer's progression scaled to --max-patch")
    parser.add_argument("--batch-pixels", type=int, default=0, help="0: Restormer's batches")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = RunFolder(args.run)
    teacher = Restormer.from_checkpoint(run.teacher_weights)
    pool = load_pool(run.pool, teacher)
    architecture = args.architecture or json.loads((run.finetune / "finetune.json").read_text())["best"]
    model = HybridUNet.from_teacher(teacher, architecture, pool)
    validation = validation_crops("gaussian_noise", 25.0)
    data = SyntheticPairs(training_photos(), "gaussian_noise", 25.0)
    recipe = finetune_recipe(
        args.iterations,
        FinetunePatches(args.max_patch, args.min_patch, args.batch_pixels),
        checkpoint_every=50,
        lr=args.lr,
        distill_weight=args.distill_weight,
    )
    composed = validation_psnr(model, validation)
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    training = Training(model, data, recipe, args.out, write_hybrid, validation, architecture, reference=teacher)
    train_restoration(training, show_progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF)
    tuned = validation_psnr(HybridUNet.load(args.out / RESULT), validation)
    result = {
        "architecture": architecture,
        "lr": args.lr,
        "distill_weight": args.distill_weight,
        "iterations": args.iterations,
        "schedule": {"patches": recipe.schedule.patch_sizes, "batches": recipe.schedule.batch_sizes},
        "teacher_psnr": validation_psnr(teacher, validation),
        "psnr_composed": composed,
        "psnr_finetuned": tuned,
        "wall_s_this_run": time.perf_counter() - start,
        "user_s": after.ru_utime - before.ru_utime,
        "system_s": after.ru_stime - before.ru_stime,
        "threads": args.threads,
    }
    (args.out / "recipe.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
