from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeens.data.bundled import bundled_photo
from edgeens.data.synthetic import SyntheticPairs
from edgeens.data.transforms import ProgressiveSchedule
from edgeens.models.restormer import Restormer
from edgeens.train.loop import (
    RecipeMismatchError,
    Training,
    TrainingRecipe,
    check_same_recipe,
    learning_rate,
    train_restoration,
    training_seconds,
)
from edgeens.train.teacher import train_teacher

SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


def recipe(iterations: int, **overrides) -> TrainingRecipe:
    schedule = ProgressiveSchedule().scaled(32)
    return TrainingRecipe(iterations=iterations, schedule=schedule, checkpoint_every=4, seed=7, **overrides)


@pytest.fixture(scope="module")
def data() -> SyntheticPairs:
    return SyntheticPairs([bundled_photo("astronaut")[:128, :128], bundled_photo("coffee")[:128, :128]], sigma=25)


def test_learning_rate_is_constant_then_cosine_to_eta_min() -> None:
    r = TrainingRecipe()
    assert learning_rate(r, 1) == learning_rate(r, 92_000) == 3e-4
    assert learning_rate(r, 92_000 + 104_000) == pytest.approx((3e-4 + 1e-6) / 2)
    assert learning_rate(r, 300_000) == pytest.approx(1e-6)


def test_a_warm_up_rises_linearly_to_lr_then_the_schedule_goes_on_as_before() -> None:
    r = TrainingRecipe(iterations=1000, warmup=100)
    assert learning_rate(r, 1) == pytest.approx(3e-6) and learning_rate(r, 50) == pytest.approx(1.5e-4)
    assert learning_rate(r, 100) == learning_rate(r, 200) == 3e-4
    assert learning_rate(r, 1000) == pytest.approx(1e-6)


def test_training_lowers_the_l1_loss(data, tmp_path) -> None:
    torch.manual_seed(0)
    model = Restormer(**SMALL)
    losses = []
    train_teacher(
        model, data, recipe(60, lr=2e-3), tmp_path, on_step=lambda i, loss: losses.append(loss), show_progress=False
    )
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["iteration"] for entry in log] == list(range(1, 61))
    assert (tmp_path / "teacher.safetensors").is_file()
    assert Restormer.from_checkpoint(tmp_path / "teacher.safetensors").config.dim == 8


def test_a_killed_run_resumes_exactly(data, tmp_path) -> None:
    torch.manual_seed(0)
    straight = Restormer(**SMALL)
    torch.manual_seed(0)
    resumed = Restormer(**SMALL)
    train_teacher(straight, data, recipe(10), tmp_path / "a", show_progress=False)
    partial = train_teacher(resumed, data, recipe(10), tmp_path / "b", max_steps_this_run=6, show_progress=False)
    assert partial == {"iteration": 6, "finished": False}
    torch.manual_seed(123)
    fresh = Restormer(**SMALL)  # a new process: different initial weights, all restored from the checkpoint
    train_teacher(fresh, data, recipe(10), tmp_path / "b", show_progress=False)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    iterations = [json.loads(line)["iteration"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert iterations == list(range(1, 11))


def test_the_training_wall_time_is_summed_over_restarts(data, tmp_path) -> None:
    """Every iteration's log line carries the running training time; a resumed run goes on from the time logged at
    its checkpoint, so a row's wall time in a report counts every session it trained in, and nothing twice."""
    torch.manual_seed(0)
    model = Restormer(**SMALL)
    assert training_seconds(tmp_path) is None  # nothing trained yet
    train_teacher(model, data, recipe(10), tmp_path, max_steps_this_run=6, show_progress=False)
    first = training_seconds(tmp_path)
    assert first is not None and first > 0
    summary = train_teacher(Restormer(**SMALL), data, recipe(10), tmp_path, show_progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    seconds = [entry["seconds"] for entry in log]
    assert seconds == sorted(seconds) and seconds[5] == pytest.approx(first)  # iteration 6: the first run's total
    assert summary["training_seconds"] == pytest.approx(training_seconds(tmp_path), abs=0.01)
    assert summary["training_seconds"] > first + 0.5 * summary["seconds_this_run"]
    untimed = tmp_path / "untimed"  # a log from before iterations were timed: no total rather than an undercount
    untimed.mkdir()
    (untimed / "log.jsonl").write_text(json.dumps({"iteration": 1, "loss": 0.1}) + "\n")
    assert training_seconds(untimed) is None


def test_a_second_process_training_into_the_same_folder_stops_before_touching_it(data, tmp_path) -> None:
    from edgeens.files import FolderBusyError, folder_lock

    torch.manual_seed(0)
    model = Restormer(**SMALL)
    train_teacher(model, data, recipe(8), tmp_path, max_steps_this_run=4, show_progress=False)
    log_before = (tmp_path / "log.jsonl").read_text()
    checkpoint_before = (tmp_path / "checkpoint.pt").read_bytes()
    with folder_lock(tmp_path, "a first edgeens teacher"), pytest.raises(FolderBusyError, match="first edgeens"):
        train_teacher(Restormer(**SMALL), data, recipe(8), tmp_path, show_progress=False)
    assert (tmp_path / "log.jsonl").read_text() == log_before
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint_before
    assert train_teacher(model, data, recipe(8), tmp_path, show_progress=False)["finished"]  # free again: it resumes


def test_validation_during_training_is_logged_as_the_curve(data, tmp_path) -> None:
    torch.manual_seed(0)
    lq, gt = data.sample(48, 1, np.random.default_rng(1))
    pairs = [(lq[0].transpose(1, 2, 0), gt[0].transpose(1, 2, 0))]
    model = Restormer(**SMALL)
    summary = train_teacher(model, data, recipe(12, validate_every=5), tmp_path, pairs, show_progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    curve = [entry for entry in log if "validation_psnr" in entry]
    assert [entry["iteration"] for entry in curve] == [5, 10]
    assert all(np.isfinite(entry["validation_psnr"]) for entry in curve)
    assert summary["validation_psnr"] is not None and summary["iterations"] == 12


def test_distillation_adds_the_l1_to_the_reference_output(data, tmp_path) -> None:
    torch.manual_seed(0)
    student, reference = Restormer(**SMALL), Restormer(**SMALL)  # two different random models
    start = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(ValueError, match="pass reference="):
        train_restoration(Training(student, data, recipe(1, distill_weight=0.5), tmp_path / "none", lambda *_: None))
    losses = []
    training = Training(
        student, data, recipe(1, distill_weight=0.5), tmp_path / "distil", lambda *_: None, reference=reference
    )
    train_restoration(training, on_step=lambda i, loss: losses.append(loss), show_progress=False)
    # The first iteration's loss, recomputed from the starting weights on the same crops.
    student.load_state_dict(start)
    patch, batch = recipe(1).schedule.at(1, 1)
    lq, gt = (torch.from_numpy(a) for a in data.sample(patch, batch, np.random.default_rng([7, 0, 1])))
    with torch.no_grad():
        restored = student.train()(lq)
        plain = torch.nn.functional.l1_loss(restored, gt).item()
        expected = plain + 0.5 * torch.nn.functional.l1_loss(restored, reference(lq)).item()
    assert losses[0] == pytest.approx(expected, rel=1e-5) and abs(expected - plain) > 1e-3
    assert all(not p.requires_grad for p in reference.parameters())  # frozen, never stepped


def test_a_folder_trained_with_another_recipe_is_refused_not_mixed(data, tmp_path) -> None:
    torch.manual_seed(0)
    train_teacher(Restormer(**SMALL), data, recipe(8), tmp_path, max_steps_this_run=4, show_progress=False)
    # Resuming the half-trained folder under a longer schedule would mix two learning-rate curves.
    with pytest.raises(RecipeMismatchError, match=r"iterations 8 -> 12.*new --out folder"):
        train_teacher(Restormer(**SMALL), data, recipe(12), tmp_path, show_progress=False)
    # How often checkpoints are written is bookkeeping: that may change.
    done = train_teacher(Restormer(**SMALL), data, recipe(8, validate_every=2), tmp_path, show_progress=False)
    assert done["finished"]
    (tmp_path / "recipe.json").unlink()  # a folder from before recipe.json: its summary is read instead
    with pytest.raises(RecipeMismatchError, match="lr 0.0003 -> 0.001"):
        check_same_recipe(tmp_path, recipe(8, lr=1e-3))


def test_a_loss_that_turns_non_finite_stops_training_and_keeps_the_last_finite_checkpoint(data, tmp_path) -> None:
    from edgeens.train.loop import TrainingDivergedError

    class TurnsNaN:  # good crops for 5 iterations, then a batch with NaN in it (a broken file, an absurd sigma)
        calls = 0

        def sample(self, patch, batch, rng):
            self.calls += 1
            lq, gt = data.sample(patch, batch, rng)
            return (lq * np.nan, gt) if self.calls > 5 else (lq, gt)

    torch.manual_seed(0)
    with pytest.raises(TrainingDivergedError, match=r"the loss is nan at iteration 6 .*checkpoint .* is kept"):
        train_teacher(Restormer(**SMALL), TurnsNaN(), recipe(8), tmp_path, show_progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4  # the last one written before the loss turned
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (tmp_path / "teacher.safetensors").exists()


def test_non_finite_or_negative_sigma_is_refused_at_the_command_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from edgeens.cli import app

    for sigma in ("nan", "inf", "-5"):
        result = CliRunner().invoke(app, ["teacher", "--bundled", "--sigma", sigma, "--out", str(tmp_path / sigma)])
        assert result.exit_code == 2 and "--sigma must be a number from 0 to 255" in " ".join(result.output.split())
        assert not (tmp_path / sigma / "checkpoint.pt").exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_a_damaged_checkpoint_is_named_with_the_way_out(data, tmp_path, damage) -> None:
    from edgeens.train.resume import DamagedCheckpointError

    torch.manual_seed(0)
    train_teacher(Restormer(**SMALL), data, recipe(8), tmp_path, max_steps_this_run=4, show_progress=False)
    checkpoint = tmp_path / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    # Several random files: each fails the unpickler its own way (one raised an IndexError that was not caught).
    damaged = (
        [whole[: len(whole) // 2]]
        if damage == "truncated"
        else [np.random.default_rng(s).bytes(4096) for s in range(20)]
    )
    for content in damaged:
        checkpoint.write_bytes(content)
        with pytest.raises(
            DamagedCheckpointError, match=rf"{checkpoint} is damaged .*Delete it to start this training"
        ):
            train_teacher(Restormer(**SMALL), data, recipe(8), tmp_path, show_progress=False)
