from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from edgeens.models.checkpoint import CheckpointError
from edgeens.models.hybrid import HybridUNet
from edgeens.models.restormer import Restormer
from edgeens.models.space import ArchitectureError
from edgeens.train.distill import DistillRecipe, capture_features, distill_pool
from edgeens.train.pool import load_pool

SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


@pytest.fixture()
def teacher() -> Restormer:
    torch.manual_seed(0)
    return Restormer(**SMALL).eval()


@pytest.fixture()
def features(teacher: Restormer, tmp_path):
    g = torch.Generator().manual_seed(1)
    capture_features(
        teacher, torch.rand(12, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g), tmp_path / "features"
    )
    return tmp_path / "features"


def test_capture_stores_each_stage_input_and_output(features) -> None:
    latent = load_file(features / "latent.train.safetensors")
    assert latent["input"].shape == latent["output"].shape == (12, 64, 2, 2)
    refinement = load_file(features / "refinement.holdout.safetensors")
    assert refinement["input"].shape == (4, 16, 16, 16)
    assert not torch.equal(refinement["input"], refinement["output"])


def test_distillation_lowers_alignment_error_and_writes_a_pool(teacher, features, tmp_path) -> None:
    recipe = DistillRecipe(steps=40, lr=2e-3, checkpoint_every=10)
    only = ["encoder1-M1", "latent-M2"]
    manifest = distill_pool(teacher, features, tmp_path / "pool", recipe, only=only, show_progress=False)
    assert set(manifest["surrogates"]) == set(only)
    for entry in manifest["surrogates"].values():
        assert entry["alignment_after"]["relative_l2"] < entry["alignment_before"]["relative_l2"]
        assert (tmp_path / "pool" / entry["file"]).is_file()
    assert not list((tmp_path / "pool" / "partial").iterdir())
    pool = load_pool(tmp_path / "pool", teacher)
    hybrid = HybridUNet.from_teacher(teacher, "M1-R-R-M2-R-R-R-R", surrogates=pool)
    assert _same_weights(hybrid.latent, pool[("latent", "M2")]) and hybrid.latent is not pool[("latent", "M2")]
    with torch.no_grad():
        assert hybrid.eval()(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_into_a_log_file_each_finished_surrogate_is_one_line(teacher, features, tmp_path, capsys) -> None:
    # Under pytest stdout is not a terminal: the bars draw nothing there, so hours of distillation would be silent.
    only = ["encoder1-M1", "latent-M2"]
    distill_pool(teacher, features, tmp_path / "pool", DistillRecipe(steps=4), only=only, show_progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("distilled ")]
    assert [line.split()[1] for line in lines] == only
    assert "(2/2, " in lines[1] and "4 steps, stopped on budget, relative L2 " in lines[1]
    assert all(line.split()[-1].replace(".", "").isdigit() for line in lines)  # the figure on the same line


def test_every_family_distils_and_a_pool_grows_by_family(teacher, features, tmp_path) -> None:
    from edgeens.models.space import parse_families

    recipe = DistillRecipe(steps=30, lr=2e-3, checkpoint_every=10)
    only = ["decoder2-M1", "decoder2-S1", "decoder2-G1"]
    distill_pool(teacher, features, tmp_path / "pool", recipe, parse_families("M"), only=only, show_progress=False)
    assert load_pool(tmp_path / "pool", teacher).space.families == parse_families("M")
    manifest = distill_pool(
        teacher, features, tmp_path / "pool", recipe, parse_families("S,G"), only=only, show_progress=False
    )
    assert set(manifest["surrogates"]) == set(only) and list(manifest["families"]) == ["M", "S", "G"]
    assert manifest["families"]["S"]["knobs"] == {"d_state": 4, "directions": 2, "expand": 1.0}  # declared, not guessed
    for entry in manifest["surrogates"].values():
        assert entry["alignment_after"]["relative_l2"] < entry["alignment_before"]["relative_l2"], entry["token"]
    pool = load_pool(tmp_path / "pool", teacher)
    assert pool.space.families == parse_families("M,S,G")
    hybrid = HybridUNet.from_teacher(teacher, "R-R-R-R-R-G1-R-R", surrogates=pool)
    assert _same_weights(hybrid.decoder_level2, pool[("decoder2", "G1")])
    with pytest.raises(ArchitectureError, match="defines family S as .* not .*another letter"):
        distill_pool(teacher, features, tmp_path / "pool", recipe, parse_families("S=gated_conv"), show_progress=False)


def test_a_version_1_pool_without_families_loads_as_mambair(teacher, features, tmp_path) -> None:
    from edgeens.models.space import parse_families
    from edgeens.train.pool import POOL_FORMAT

    distill_pool(teacher, features, tmp_path / "pool", DistillRecipe(steps=2), only=["latent-M2"], show_progress=False)
    path = tmp_path / "pool" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["format"] == POOL_FORMAT == "edgeens.pool.v2"
    # Format 1: no families (MambaIR at surrogate_config) and surrogates named by depth alone.
    manifest["format"] = "edgeens.pool.v1"
    del manifest["families"]
    manifest["surrogate_config"] = {"d_state": 16, "expand": 2.0}
    for entry in manifest["surrogates"].values():
        del entry["token"], entry["family"]
    path.write_text(json.dumps(manifest))
    pool = load_pool(tmp_path / "pool", teacher)
    assert pool.space.families == parse_families("M") and ("latent", "M2") in pool
    # Distilling more into it writes it in the current format.
    distill_pool(
        teacher, features, tmp_path / "pool", DistillRecipe(steps=2), only=["decoder1-M1"], show_progress=False
    )
    rewritten = json.loads(path.read_text())
    assert rewritten["format"] == POOL_FORMAT and rewritten["surrogates"]["latent-M2"]["token"] == "M2"


def test_surrogates_distilled_in_two_processes_equal_those_distilled_in_one(teacher, features, tmp_path) -> None:
    from edgeens.models.space import parse_families

    recipe = DistillRecipe(steps=4, checkpoint_every=2)
    only = ["encoder2-M1", "encoder2-G1", "latent-S2"]
    families = parse_families("M,S,G")
    for jobs in (1, 2):
        distill_pool(teacher, features, tmp_path / f"pool{jobs}", recipe, families, only, False, jobs=jobs)
    for name in only:
        one, two = (load_file(tmp_path / f"pool{jobs}" / f"{name}.safetensors") for jobs in (1, 2))
        assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one), name
    manifest = json.loads((tmp_path / "pool2" / "manifest.json").read_text())
    assert set(manifest["surrogates"]) == set(only) and not list((tmp_path / "pool2").glob("manifest.rank*"))


def test_a_rerun_keeps_finished_surrogates(teacher, features, tmp_path) -> None:
    recipe = DistillRecipe(steps=5, checkpoint_every=2)
    distill_pool(teacher, features, tmp_path / "pool", recipe, only=["encoder1-M1"], show_progress=False)
    first = (tmp_path / "pool" / "encoder1-M1.safetensors").stat().st_mtime_ns
    manifest = distill_pool(
        teacher, features, tmp_path / "pool", recipe, only=["encoder1-M1", "decoder1-M1"], show_progress=False
    )
    assert (tmp_path / "pool" / "encoder1-M1.safetensors").stat().st_mtime_ns == first
    assert set(manifest["surrogates"]) == {"encoder1-M1", "decoder1-M1"}
    assert json.loads((tmp_path / "pool" / "manifest.json").read_text()) == manifest


def test_a_pool_for_another_teacher_is_refused(teacher, features, tmp_path) -> None:
    distill_pool(
        teacher, features, tmp_path / "pool", DistillRecipe(steps=2), only=["encoder1-M1"], show_progress=False
    )
    torch.manual_seed(5)
    other = Restormer(**SMALL)
    with pytest.raises(CheckpointError, match="another teacher"):
        load_pool(tmp_path / "pool", other)
    with pytest.raises(CheckpointError, match="another teacher"):
        distill_pool(other, features, tmp_path / "pool", DistillRecipe(steps=2), show_progress=False)
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_pool(tmp_path / "missing", teacher)


@pytest.mark.parametrize("damage", [b"", b"{not json", b"\xff\xfe", b"[]", b'{"format": "edgeens.pool.v1"}'])
def test_a_damaged_pool_manifest_is_named_with_the_fix(teacher, features, tmp_path, damage: bytes) -> None:
    distill_pool(
        teacher, features, tmp_path / "pool", DistillRecipe(steps=2), only=["encoder1-M1"], show_progress=False
    )
    (tmp_path / "pool" / "manifest.json").write_bytes(damage)
    for attempt in (
        lambda: load_pool(tmp_path / "pool", teacher),
        lambda: distill_pool(teacher, features, tmp_path / "pool", DistillRecipe(steps=2), show_progress=False),
    ):
        with pytest.raises(CheckpointError, match="manifest.json is damaged.*delete it and run edgeens distill"):
            attempt()


def test_a_crashed_surrogate_resumes_from_its_last_checkpoint_exactly(teacher, features, tmp_path, monkeypatch) -> None:
    import edgeens.train.distill as distill_module

    recipe = DistillRecipe(steps=8, checkpoint_every=3)
    distill_pool(teacher, features, tmp_path / "straight", recipe, only=["latent-M2"], show_progress=False)

    real_l1 = distill_module.F.l1_loss
    calls = {"n": 0}

    def crash_on_sixth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # the run is killed during step 6; step 3's checkpoint is on disk
        return real_l1(*args, **kwargs)

    monkeypatch.setattr(distill_module.F, "l1_loss", crash_on_sixth)
    with pytest.raises(KeyboardInterrupt):
        distill_pool(teacher, features, tmp_path / "resumed", recipe, only=["latent-M2"], show_progress=False)
    assert (tmp_path / "resumed" / "partial" / "latent-M2.pt").is_file()
    monkeypatch.setattr(distill_module.F, "l1_loss", real_l1)
    distill_pool(teacher, features, tmp_path / "resumed", recipe, only=["latent-M2"], show_progress=False)

    straight = load_file(tmp_path / "straight" / "latent-M2.safetensors")
    resumed = load_file(tmp_path / "resumed" / "latent-M2.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_torchrun_shards_surrogates_across_two_cpu_processes(teacher, tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    save_file(teacher.state_dict(), tmp_path / "teacher.safetensors")
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "edgeens",
        "distill",
        "--teacher",
        str(tmp_path / "teacher.safetensors"),
        "--out",
        str(tmp_path / "run"),
        "--crops",
        "4",
        "--patch",
        "16",
        "--families",
        "M",
        "--steps",
        "2",
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "pool" / "manifest.json").read_text())
    assert len(manifest["surrogates"]) == 8  # depths [1,1,1,2,1,1,1,1]: one surrogate per stage
    assert {entry["rank"] for entry in manifest["surrogates"].values()} == {0, 1}
    assert not list((tmp_path / "run" / "pool").glob("manifest.rank*.json"))
    assert len(load_pool(tmp_path / "run" / "pool", teacher)) == 8


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_deleted_or_truncated_surrogate_is_named_and_distilled_again(teacher, features, tmp_path, damage) -> None:
    recipe = DistillRecipe(steps=4, checkpoint_every=2)
    only = ["encoder1-M1", "latent-M2"]
    distill_pool(teacher, features, tmp_path / "pool", recipe, only=only, show_progress=False)
    target = tmp_path / "pool" / "latent-M2.safetensors"
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="latent-M2.safetensors is missing or unreadable"):
        load_pool(tmp_path / "pool", teacher)
    kept = (tmp_path / "pool" / "encoder1-M1.safetensors").stat().st_mtime_ns
    distill_pool(teacher, features, tmp_path / "pool", recipe, only=only, show_progress=False)
    pool = load_pool(tmp_path / "pool", teacher)
    assert ("latent", "M2") in pool and ("encoder1", "M1") in pool
    assert (tmp_path / "pool" / "encoder1-M1.safetensors").stat().st_mtime_ns == kept  # the intact one is kept


def test_features_captured_with_other_settings_are_not_reused(teacher, tmp_path) -> None:
    from edgeens.data.task import TaskData
    from edgeens.train.distill import ensure_features

    task = TaskData("bundled")
    ensure_features(teacher, task, tmp_path / "features", 8, 4, 16)
    assert load_file(tmp_path / "features" / "latent.train.safetensors")["input"].shape[0] == 8
    ensure_features(teacher, task, tmp_path / "features", 8, 4, 16)  # same: reused
    with pytest.raises(CheckpointError, match=r"crops 8 \(asked: 16\)"):
        ensure_features(teacher, task, tmp_path / "features", 16, 4, 16)
    with pytest.raises(CheckpointError, match=r"sigma 25.0 \(asked: 15.0\)"):  # other data: refused too
        ensure_features(teacher, TaskData("bundled", sigma=15.0), tmp_path / "features", 8, 4, 16)


def test_features_too_large_for_memory_are_refused_before_any_capture(teacher, tmp_path, monkeypatch) -> None:
    import edgeens.limits
    from edgeens.data.task import TaskData
    from edgeens.limits import LimitError
    from edgeens.train.distill import ensure_features

    monkeypatch.setattr(edgeens.limits, "memory_bytes", lambda: 256 << 20)
    with pytest.raises(LimitError, match="capturing the teacher's stage features on 5000 crops.*fewer --crops"):
        ensure_features(teacher, TaskData("bundled"), tmp_path / "features", 4000, 1000, 512)
    assert not (tmp_path / "features").exists()


def test_a_second_distillation_of_the_same_pool_stops_at_once(teacher, tmp_path) -> None:
    from edgeens.data.task import TaskData
    from edgeens.files import FolderBusyError, folder_lock
    from edgeens.models.space import parse_families
    from edgeens.train.distill import DistillRequest, distill_step

    request = DistillRequest(teacher, tmp_path, parse_families("G"), TaskData("bundled"), crops=4, patch=16, steps=1)
    with folder_lock(tmp_path / "pool", "a first edgeens distill"), pytest.raises(FolderBusyError, match="first"):
        distill_step(request, show_progress=False)
    assert not (tmp_path / "features").exists()  # stopped before any work


def test_a_pool_being_distilled_is_said_to_be_so_with_its_writer(teacher, tmp_path) -> None:
    from edgeens.files import folder_lock
    from edgeens.train.pool import load_pool

    with folder_lock(tmp_path / "pool", "edgeens distill"):  # as a distillation still running holds it
        with pytest.raises(CheckpointError, match=r"is being distilled now \(pid \d+: edgeens distill"):
            load_pool(tmp_path / "pool", teacher)
    with pytest.raises(CheckpointError, match="run `edgeens distill` first"):  # finished or killed: nobody holds it
        load_pool(tmp_path / "pool", teacher)


def test_a_plateau_stops_a_check_without_improvement_in_patience_checks() -> None:
    from edgeens.train.distill import Plateau

    plateau = Plateau(DistillRecipe(plateau_patience=2, plateau_tolerance=0.01))
    for step, error in [(100, 0.5), (200, 0.4), (300, 0.399), (400, 0.3)]:  # 0.399: within 1%, no improvement
        plateau.check(step, error)
    assert plateau.stopped_at is None and plateau.best == 0.3 and plateau.since_best == 0
    plateau.check(500, 0.3)
    plateau.check(600, 0.31)
    assert plateau.stopped_at == 600 and [s for s, _ in plateau.curve] == [100, 200, 300, 400, 500, 600]


def test_distillation_to_the_plateau_stops_early_records_where_and_resumes_to_the_same_stop(
    teacher, features, tmp_path
) -> None:
    import math

    # A ceiling far past convergence for a 1-block surrogate at lr 5e-3: the held-out error stops improving first.
    recipe = DistillRecipe(steps=2000, lr=5e-3, checkpoint_every=20, plateau_patience=2, plateau_every=20)
    recipe = dataclasses.replace(recipe, plateau_tolerance=0.05)
    only = ["encoder1-M1"]
    straight = distill_pool(teacher, features, tmp_path / "straight", recipe, only=only, show_progress=False)
    entry = straight["surrogates"]["encoder1-M1"]
    assert entry["stopped"] == "plateau" and entry["steps"] == 2000 and entry["steps_run"] < 2000
    curve = entry["alignment_curve"]
    assert curve[-1][0] == entry["steps_run"] and len(curve) == entry["steps_run"] // 20
    best = min(error for _, error in curve)
    assert all(error > best * (1 - 0.05) for _, error in curve[-2:])  # the last two checks did not improve on it
    assert math.isclose(entry["alignment_after"]["relative_l2"], curve[-1][1], rel_tol=1e-6)
    # Killed after the first checkpoint: the resumed run stops at the same step with the same weights.
    from edgeens.train import distill

    original = distill.save_training_state

    def stop_after_saving(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    distill.save_training_state = stop_after_saving
    try:
        with pytest.raises(KeyboardInterrupt):
            distill_pool(teacher, features, tmp_path / "resumed", recipe, only=only, show_progress=False)
    finally:
        distill.save_training_state = original
    resumed = distill_pool(teacher, features, tmp_path / "resumed", recipe, only=only, show_progress=False)
    assert resumed["surrogates"]["encoder1-M1"]["steps_run"] == entry["steps_run"]
    a, b = (load_file(tmp_path / name / "encoder1-M1.safetensors") for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
