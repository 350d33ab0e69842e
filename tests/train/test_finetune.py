from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeens.data.bundled import bundled_photo
from edgeens.data.synthetic import SyntheticPairs
from edgeens.data.task import bundled_validation
from edgeens.data.transforms import ProgressiveSchedule
from edgeens.models.hybrid import HybridUNet
from edgeens.models.restormer import Restormer
from edgeens.models.space import FAMILIES, SearchSpace, parse_families
from edgeens.models.surrogates import build_surrogate
from edgeens.train.finetune import (
    CandidateTraining,
    FinetuneError,
    FinetunePatches,
    finetune_candidates,
    finetune_recipe,
)
from edgeens.train.loop import TrainingRecipe, recipe_record
from edgeens.train.pool import BlockPool
from tests.conftest import SMALL_TEACHER as SMALL


def test_candidates_are_fine_tuned_and_the_best_is_kept(tmp_path) -> None:
    torch.manual_seed(0)
    teacher = Restormer(**SMALL).eval()
    space = SearchSpace(teacher.config)
    pool = {(s.name, t): build_surrogate(s, t, FAMILIES["M"]) for s, t in space.surrogates()}
    data = SyntheticPairs([bundled_photo("astronaut")[:96, :96]], sigma=25)
    recipe = TrainingRecipe(iterations=6, schedule=ProgressiveSchedule().scaled(16), checkpoint_every=3)
    validation = bundled_validation("gaussian_noise", 25, size=32)
    candidates = ["M1-R-R-R-R-R-R-R", "R-R-R-M2-R-R-R-M1"]
    training = CandidateTraining(data, recipe, validation)
    summary = finetune_candidates(teacher, pool, candidates, training, tmp_path, show_progress=False)
    scores = {row["architecture"]: row["psnr_finetuned"] for row in summary["candidates"]}
    assert set(scores) == set(candidates) and summary["best"] == max(scores, key=scores.get)
    best = HybridUNet.load(tmp_path / "best.safetensors")
    assert best.architecture_string == summary["best"]
    assert all(row["psnr_finetuned"] != row["psnr_composed"] for row in summary["candidates"])  # training happened
    stamp = (tmp_path / candidates[0] / "hybrid.safetensors").stat().st_mtime_ns
    finetune_candidates(teacher, pool, candidates, training, tmp_path, show_progress=False)
    assert (tmp_path / candidates[0] / "hybrid.safetensors").stat().st_mtime_ns == stamp  # finished: kept
    with pytest.raises(FinetuneError, match="no candidates"):
        finetune_candidates(teacher, pool, [], training, tmp_path)


def test_candidates_fine_tuned_two_at_a_time_equal_those_fine_tuned_one_by_one(tmp_path) -> None:
    torch.manual_seed(0)
    teacher = Restormer(**SMALL).eval()
    space = SearchSpace(teacher.config, parse_families("M,G"))
    pool = BlockPool(space, {(s.name, t): build_surrogate(s, t, space.family(t[0])) for s, t in space.surrogates()})
    data = SyntheticPairs([bundled_photo("astronaut")[:96, :96]], sigma=25)
    recipe = TrainingRecipe(iterations=3, schedule=ProgressiveSchedule().scaled(16), checkpoint_every=3)
    validation = bundled_validation("gaussian_noise", 25, size=32)
    candidates = ["G1-R-R-R-R-R-R-R", "R-R-R-M2-R-R-R-G1"]
    for jobs in (1, 2):
        training = CandidateTraining(data, recipe, validation)
        finetune_candidates(teacher, pool, candidates, training, tmp_path / str(jobs), False, jobs)
    for name in candidates:
        one, two = (HybridUNet.load(tmp_path / str(jobs) / name / "hybrid.safetensors") for jobs in (1, 2))
        assert one.space.families == parse_families("M,G")
        assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values(), strict=True))


@pytest.mark.slow
def test_torchrun_fine_tunes_data_parallel_on_two_cpu_processes(small_run, tmp_path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "edgeens", "finetune"]
    cmd += ["--teacher", str(small_run / "teacher.safetensors"), "--pool", str(small_run / "pool")]
    cmd += ["--arch", "M1-R-R-M2-R-R-R-R", "--iterations", "4", "--max-patch", "16", "--out", str(tmp_path / "ft")]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert summary["ranks"] == 2 and summary["best"] == "M1-R-R-M2-R-R-R-R"
    log = [json.loads(line) for line in (tmp_path / "ft" / "M1-R-R-M2-R-R-R-R" / "log.jsonl").read_text().splitlines()]
    assert [entry["iteration"] for entry in log] == [1, 2, 3, 4] and all(entry["ranks"] == 2 for entry in log)
    assert HybridUNet.load(tmp_path / "ft" / "best.safetensors").architecture_string == "M1-R-R-M2-R-R-R-R"


def test_a_second_finetune_of_the_same_folder_stops_at_once(tmp_path) -> None:
    from edgeens.files import FolderBusyError, folder_lock

    torch.manual_seed(0)
    teacher = Restormer(**SMALL)
    with folder_lock(tmp_path / "ft", "a first edgeens finetune"), pytest.raises(FolderBusyError, match="first"):
        pool = BlockPool(SearchSpace(teacher.config), {})
        finetune_candidates(teacher, pool, ["R-R-R-R-R-R-R-R"], CandidateTraining(None, None, []), tmp_path / "ft")


def test_fine_tuning_patches_scale_restormers_progression_and_balance_its_batches() -> None:
    assert FinetunePatches().schedule() == ProgressiveSchedule().scaled(64)  # the default: make demo's recipe
    larger = FinetunePatches(128, 64, 4096).schedule()
    assert larger.patch_sizes == (64, 72, 80, 96, 112, 128) and larger.batch_sizes == (1,) * 6
    assert FinetunePatches(128, 0, 8192).schedule().batch_sizes == (5, 3, 2, 1, 1, 1)
    record = recipe_record(finetune_recipe(10, FinetunePatches(128, 64, 4096)))  # what recipe.json holds
    assert record["schedule"]["patch_sizes"] == [64, 72, 80, 96, 112, 128] and record["iterations"] == 10
    for patches, says in [((100,), "multiple of 8"), ((64, 128), "fine-tuning patches"), ((64, 0, -1), "pixels")]:
        with pytest.raises(ValueError, match=says):
            FinetunePatches(*patches)
