from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace, families_to_dict, parse_families
from edgeens.profile.table import Latency, LatencyTable
from edgeens.run import STEPS

runner = CliRunner()
SMALL = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}


def test_the_command_and_the_pipeline_know_the_same_steps_in_the_same_order() -> None:
    import typer

    from edgeens.run import STEP_FUNCTIONS

    assert tuple(name for name, _ in STEP_FUNCTIONS) == STEPS
    steps = next(p for p in typer.main.get_command(app).commands["run"].params if p.name == "steps")
    assert steps.default == ",".join(STEPS)


def _made_up_table(teacher: Restormer, name: str) -> LatencyTable:
    """A host table at 16x16 for the teacher's G-family space whose numbers are made up (G stacks cheaper than
    Restormer ones, so the front has a bend), saved as a table for the space `name` would be."""
    space = SearchSpace(teacher.config, parse_families("G"))
    stages = {
        s.name: {c: Latency(10.0 if c == "R" else float(c[1:]), 1, 1, 5) for c in s.choices} for s in space.stages
    }
    return LatencyTable(
        "host",
        "executorch-xnnpack",
        16,
        16,
        teacher.config.to_dict(),
        Latency(5, 5, 5, 5),
        stages,
        threads=1,
        space_name=name + space.name_suffix,
        families=families_to_dict(space.families),
    )


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _small_test_photos(tmp_path, monkeypatch) -> None:
    """A copy of the photo catalogue whose test photos are 64x64 corners (EDGEENS_PHOTOS, which the spawned workers
    inherit): the compare step scores every model on them instead of the whole photos; the plumbing is the same,
    the eager scans over 768x512 photos took most of this test's minutes."""
    from edgeens.data.images import read_image, write_image
    from edgeens.data.photos import photo_root

    installed, small = photo_root(), tmp_path / "photos"
    for split in ("train", "val", "test"):
        for path in (installed / split).glob("*.png"):
            (small / split).mkdir(parents=True, exist_ok=True)
            if split == "test":
                write_image(small / split / path.name, read_image(path)[:64, :64])
            else:
                (small / split / path.name).symlink_to(path)
    shutil.copy(installed / "manifest.json", small / "manifest.json")
    monkeypatch.setenv("EDGEENS_PHOTOS", str(small))


@pytest.mark.slow(seconds=220)  # the suite's longest: the scheduler starts it first
def test_run_goes_from_a_teacher_to_a_report_and_a_rerun_reuses_everything(tmp_path, monkeypatch) -> None:
    # A small adopted teacher and a latency table at 16x16 whose numbers are made up (MambaIR stacks cheaper than
    # Restormer ones, so the front has a bend): the pipeline's plumbing, end to end, in a couple of minutes.
    import torch

    torch.manual_seed(0)
    teacher = Restormer(**SMALL)
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(tmp_path / "teacher.safetensors"))
    # Gated-conv surrogates only: 9 to distil instead of 25, and hybrids that lower in seconds.
    table = _made_up_table(teacher, "teacher")
    table.save(tmp_path / "profiles")
    _small_test_photos(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)  # a stray relative path (exports/, reports/) would land here and be seen
    before = _tree(tmp_path)
    args = ["run", "--out", str(tmp_path / "run"), "--teacher", str(tmp_path / "teacher.safetensors"), "--size", "16"]
    args += ["--profiles", str(tmp_path / "profiles"), "--families", "G", "--distill-steps", "2"]
    args += ["--budget", "18", "--top-k", "2", "--finetune-iterations", "2"]
    args += ["--finetune-patch", "32", "--finetune-min-patch", "16", "--finetune-batch-pixels", "512"]
    args += ["--baselines", "teacher-finetuned,random-init"]  # the others are added by a re-run below
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "\n\n" not in result.output, result.output  # off a terminal, no bar leaves an empty line in the log
    # The run wrote only inside its folder: the committed table it reused is untouched, nothing appeared beside it.
    assert {p for p in _tree(tmp_path) - before if not p.startswith("run")} == set()
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert list(summary["steps"]) == list(STEPS) and summary["steps"]["profile"]["reused"]
    # A re-run asking a longer distillation than its pool had is refused, not answered with the weaker pool.
    longer_args = list(args)
    longer_args[args.index("--distill-steps") + 1] = "3"
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != ".lock"}
    longer = runner.invoke(app, longer_args)
    text = " ".join(longer.output.split())
    assert longer.exit_code == 2 and "distilled 2 steps and this run asks --distill-steps 3" in text, text
    assert {p: p.stat().st_mtime_ns for p in written} == written  # the folder's lock aside, nothing was touched
    # So is one asking more fine-tuning than its candidates had: their recipe.json says what they were trained with.
    longer_args = list(args)
    longer_args[args.index("--finetune-iterations") + 1] = "3"
    longer = runner.invoke(app, longer_args)
    text = " ".join(longer.output.split())
    assert longer.exit_code == 2 and "was trained with another recipe (iterations 2 -> 3" in text, text
    assert {p: p.stat().st_mtime_ns for p in written} == written
    report = tmp_path / "run" / "report"
    for name in ("index.html", "report.md", "pareto.png", "restored.png"):
        assert (report / name).is_file(), name
    compare = json.loads((tmp_path / "run" / "compare" / "compare.json").read_text())
    labels = ["teacher", "ENS hybrid", "teacher, fine-tuned", "ENS, random init"]
    assert [r["model"] for r in compare["rows"]] == labels
    ens = compare["rows"][1]
    assert ens["measured_ms"] > 0 and compare["rows"][0]["measured_ms"] > 0 and ens["speedup_from"] == "measured"
    # The fair PSNR baseline: the teacher trained as long as the hybrids; both programs timed in the same rounds.
    retrained = next(r for r in compare["rows"] if r["model"] == "teacher, fine-tuned")
    assert retrained["architecture"] == compare["rows"][0]["architecture"] and retrained["measured_ms"] is None
    assert compare["timing"]["threads"] == 1 and set(compare["timing"]["samples"]) == {"teacher", "ENS hybrid"}
    assert "the teacher fine-tuned for as long" in (report / "report.md").read_text()
    # Wall time per row: every trained row (the ENS hybrid's from its fine-tuning), none for the embedded teacher.
    assert compare["rows"][0]["train_seconds"] is None
    assert all(r["train_seconds"] > 0 for r in compare["rows"][1:]), compare["rows"]
    assert "| training wall time |" in (report / "report.md").read_text()
    # What a user would try first, on the same test photos: the noisy input and non-local means told sigma.
    assert [r["model"] for r in compare["references"]] == ["degraded input", "non-local means"]
    assert all(20 < r["psnr"] < 40 for r in compare["references"])
    assert "non-local means (scikit-image, told sigma 25)" in (report / "report.md").read_text()
    # The candidates and the comparison's rows train with the same patches, the ones asked for.
    candidate = json.loads((tmp_path / "run" / "finetune" / "finetune.json").read_text())
    schedules = [
        json.loads((folder / "recipe.json").read_text())["schedule"]
        for folder in (
            tmp_path / "run" / "finetune" / candidate["best"],
            tmp_path / "run" / "compare" / "teacher-fine-tuned",
        )
    ]
    assert schedules[0] == schedules[1] and schedules[0]["patch_sizes"][0] == 16
    assert schedules[0]["patch_sizes"][-1] == 32 and schedules[0]["batch_sizes"] == [2, 2, 2, 1, 1, 1]
    assert compare["schedule"] == {key: schedules[0][key] for key in ("patch_sizes", "batch_sizes")}
    assert "(patches 16-32 px, mini-batch 2-1)" in (report / "report.md").read_text()
    assert ens["architecture"] in (report / "report.md").read_text()
    # The measured speed-up beside the paper's for the same task (denoising: 1.17x).
    assert "ENS-Denoising is 1.17x faster" in (report / "report.md").read_text()
    assert f"{ens['speedup']:.2f}x here ({ens['speedup'] / 1.17:.2f} times" in (report / "report.md").read_text()
    # `edgeens search` on the run's teacher, pool and table is the same step: the same trials, front and knee.
    search = ["search", "--teacher", str(tmp_path / "teacher.safetensors"), "--pool", str(tmp_path / "run" / "pool")]
    search += ["--table", str(tmp_path / "run" / "search" / "latency-table.json"), "--size", "16", "--budget", "18"]
    # The run kept to its default 2x bound: the teacher's predicted time halved, less the fixed part, for the stages.
    space = SearchSpace(teacher.config, parse_families("G"))
    search += ["--max-penalty", str(table.predict_ms(space.teacher_only) / 2 - table.fixed.median_ms)]
    searched = runner.invoke(app, [*search, "--top-k", "2", "--out", str(tmp_path / "cli-search")])
    assert searched.exit_code == 0, searched.output
    trials = [
        [(json.loads(line)["architecture"], json.loads(line)["psnr"]) for line in path.read_text().splitlines()]
        for path in (tmp_path / "run" / "search" / "trials.jsonl", tmp_path / "cli-search" / "trials.jsonl")
    ]
    assert trials[0] == trials[1] and len(trials[0]) == 18
    fronts = [
        json.loads((folder / "front.json").read_text())
        for folder in (tmp_path / "run" / "search", tmp_path / "cli-search")
    ]
    for key in ("front", "knee", "candidates"):
        assert fronts[0][key] == fronts[1][key], key
    copied = runner.invoke(app, [*args, "--steps", "report", "--reports", str(tmp_path / "reports")])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "reports" / "run" / "report.md").read_text() == (report / "report.md").read_text()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert all(steps[name]["reused"] for name in STEPS if name != "report")
    # The table is measured again after the search: the report keeps quoting the table the search chose with.
    table.fixed = Latency(7.25, 7, 8, 5)
    table.save(tmp_path / "profiles")
    rewritten = runner.invoke(app, [*args, "--steps", "report"])
    assert rewritten.exit_code == 0, rewritten.output
    text = (report / "report.md").read_text()
    assert "| fixed part | 5.0 |" in text and "| fixed part | 7.2 |" not in text
    # Asking for another baseline trains that row alone and scores the table again.
    wider = [*args[:-1], "teacher-finetuned,random-init,random"]
    widened = runner.invoke(app, wider)
    assert widened.exit_code == 0, widened.output
    assert "compare: training random hybrid, " in " ".join(widened.output.split())  # that row alone
    compare = json.loads((tmp_path / "run" / "compare" / "compare.json").read_text())
    assert [r["model"] for r in compare["rows"]] == [*labels[:3], "random hybrid", labels[3]]
    bad = runner.invoke(app, [*args[:-1], "random,everything"])
    assert bad.exit_code == 2 and "unknown --baselines everything" in " ".join(bad.output.split())
    _a_quantized_deployment(tmp_path, teacher, args)


def _a_quantized_deployment(tmp_path, teacher: Restormer, args: list[str]) -> None:
    """--quantize w8a8 on the run above: refused in its folder (its search chose for float programs); in a new
    folder with its teacher and pool, the search uses the int8 table and the comparison gets int8 rows."""
    refused = runner.invoke(app, [*args, "--quantize", "w8a8"])
    assert refused.exit_code == 2 and "searched for fp32 programs" in " ".join(refused.output.split()), refused.output
    table = _made_up_table(teacher, "teacher")
    table.precision, table.quantize_scope = "w8a8", "conv"
    table.save(tmp_path / "profiles")  # beside the float one, under its own name
    quantized_run = tmp_path / "run-w8a8"
    for part in ("teacher", "pool", "features", "data.json"):  # distillation is not what this checks
        source = tmp_path / "run" / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, quantized_run / part)
    quantized_args = [*args[:-1], "none", "--quantize", "w8a8", "--calibration-images", "2"]
    quantized_args[args.index("--out") + 1] = str(quantized_run)
    result = runner.invoke(app, quantized_args)
    assert result.exit_code == 0, result.output
    assert LatencyTable.load(quantized_run / "search" / "latency-table.json").precision == "w8a8"
    compiled = json.loads((quantized_run / "export" / "compile.json").read_text())["targets"]
    assert {"executorch", "onnx", "executorch--w8a8"} <= set(compiled)
    compare = json.loads((quantized_run / "compare" / "compare.json").read_text())
    assert [r["model"] for r in compare["rows"]] == ["teacher", "ENS hybrid", "teacher w8a8", "ENS hybrid w8a8"]
    assert compare["predicted_precision"] == "w8a8" and set(compare["timing"]["samples"]) == {
        "teacher",
        "ENS hybrid",
        "teacher w8a8",
        "ENS hybrid w8a8",
    }
    for row in compare["rows"][2:]:
        assert row["measured_ms"] > 0 and row["speedup"] > 0 and row["psnr_vs_float"] != 0
        assert abs(row["psnr_vs_float"]) < 3  # int8: the same restoration, not another one
    assert compare["rows"][2]["predicted_ms"] == table.predict_ms(compare["rows"][2]["architecture"])
    report = (quantized_run / "report" / "report.md").read_text()
    assert "Deployed in w8a8" in report and "executorch-xnnpack w8a8" in report


@pytest.mark.parametrize(
    ("degradation", "asset"),
    [("gaussian_noise", "gaussian25"), ("rain_streaks", "rain-streaks"), ("motion_blur", "motion-blur")],
)
def test_each_catalogue_task_adopts_its_own_embedded_teacher(tmp_path, degradation, asset) -> None:
    from edgeens.run import ASSETS

    args = ["run", "--out", str(tmp_path / "run"), "--degradation", degradation, "--steps", "teacher"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "teacher" / "teacher.json").read_text())
    assert summary["source"] == str(ASSETS / f"teacher-tiny-{asset}.safetensors")
    assert json.loads((tmp_path / "run" / "data.json").read_text())["degradation"] == degradation


def test_a_step_whose_inputs_never_ran_says_which_step_to_run(tmp_path) -> None:
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--steps", "report"])
    assert result.exit_code == 2
    assert "needs the outputs of step" in " ".join(result.output.split())


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_a_step_stops_cleanly_and_the_next_run_continues(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    torch.manual_seed(0)
    teacher = Restormer(**SMALL)
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(tmp_path / "teacher.safetensors"))
    command = [sys.executable, "-m", "edgeens", "run", "--out", str(tmp_path / "run"), "--teacher"]
    # Long enough per surrogate (about a second each) that the interrupt lands with most of them still to do.
    command += [str(tmp_path / "teacher.safetensors"), "--families", "G", "--distill-steps", "500"]
    command += ["--steps", "teacher,distill"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A CI runner started in the background passes SIGINT down as ignored; a terminal's Ctrl-C is what we test.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pool = tmp_path / "run" / "pool"
    deadline = time.time() + 240
    while not list(pool.glob("manifest.rank*.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)  # until the first surrogate is finished and recorded
    assert process.poll() is None, "distillation ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "run `edgeens run --out" in " ".join(output.split())
    first = json.loads(next(pool.glob("manifest.rank*.json")).read_text())["surrogates"]
    assert 1 <= len(first) < 9  # interrupted in the middle: some surrogates done, not all
    name = next(iter(first))
    stamp = (pool / first[name]["file"]).stat().st_mtime_ns

    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    manifest = json.loads((pool / "manifest.json").read_text())
    assert len(manifest["surrogates"]) == 9  # SMALL with family G: G1 at every stage, G2 at the latent
    assert (pool / first[name]["file"]).stat().st_mtime_ns == stamp  # finished before the interrupt: kept
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert steps["teacher"]["reused"] and not steps["distill"]["reused"]


def test_a_second_run_on_the_same_folder_stops_at_once(tmp_path) -> None:
    from edgeens.files import folder_lock

    with folder_lock(tmp_path / "run", "edgeens run"):  # as a first `edgeens run` on this folder holds it
        result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--steps", "teacher"])
    assert result.exit_code == 2, result.output
    assert "being written by another edgeens process" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "teacher").exists()


def _official_pth(tmp_path):
    """The official-format fixture as a user brings it: a Restormer .pth with its weights under "params"."""
    import torch
    from safetensors.torch import load_file

    from tests.conftest import FIXTURES

    state = load_file(FIXTURES / "restormer_small_withbias.state_dict.safetensors")
    path = tmp_path / "official.pth"
    torch.save({"params": state}, path)
    return path


@pytest.mark.parametrize("layout", ["restormer", "gopro", "hide", "realblur", "rain100", "sidd", "dpdd"])
def test_every_dataset_layout_goes_through_edgeens_run(tmp_path, layout) -> None:
    import torch

    from tests.data.layouts import make_layout

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in Restormer(**SMALL).state_dict().items()}, str(tmp_path / "t.safetensors"))
    data = make_layout(tmp_path / "data", layout)
    args = ["run", "--out", str(tmp_path / "run"), "--teacher", str(tmp_path / "t.safetensors"), "--data", str(data)]
    args += ["--families", "G", "--distill-steps", "1", "--steps", "teacher,distill", "--jobs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["source"] == "folders" and all(record["counts"][s] > 0 for s in ("train", "val", "test"))
    capture = json.loads((tmp_path / "run" / "features" / "capture.json").read_text())
    assert capture["data"] == record["fingerprint"]  # the features were cropped from these pairs
    teacher = json.loads((tmp_path / "run" / "teacher" / "teacher.json").read_text())
    assert np.isfinite(teacher["validation_psnr"])  # validated on the dataset's val pairs, not the photos
    assert f"data: paired folders {data.resolve()}" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_users_checkpoint_and_dataset_go_through_every_step_and_the_report_names_them(tmp_path) -> None:
    from tests.data.layouts import make_layout

    official = _official_pth(tmp_path)
    _made_up_table(Restormer.from_checkpoint(official), "official").save(tmp_path / "profiles")
    data = make_layout(tmp_path / "data", "restormer", count=8)
    args = ["run", "--out", str(tmp_path / "run"), "--teacher", str(official), "--data", str(data)]
    args += ["--preset", "paper", "--size", "16", "--profiles", str(tmp_path / "profiles"), "--families", "G"]
    args += ["--distill-steps", "1", "--budget", "18", "--top-k", "1"]
    args += ["--finetune-iterations", "1", "--finetune-patch", "32", "--finetune-min-patch", "16"]
    args += ["--baselines", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    test_files = {lq for lq, _ in record["splits"]["test"]}
    compare = json.loads((tmp_path / "run" / "compare" / "compare.json").read_text())
    assert compare["scored_on"].startswith(f"{len(test_files)} whole test images of paired folders")
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert str(data.resolve()) in report and str(official) in report
    assert "The paper's ENS-" not in report  # a user's own data: its task is theirs, not one of the paper's three
    assert f"{record['counts']['train']} train / {record['counts']['val']} val / {len(test_files)} test" in report
    # Nothing of the test split was trained, distilled or searched on: the run folder's record says where each went.
    assert not test_files & {lq for lq, _ in record["splits"]["train"] + record["splits"]["val"]}
    # A re-run of the folder with other data is refused before any step, naming both.
    other = make_layout(tmp_path / "other", "restormer", count=5, seed=9)
    refused = runner.invoke(app, [*args[:6], str(other), *args[7:]])
    text = " ".join(refused.output.split())
    assert refused.exit_code == 2 and str(data.resolve()) in text and str(other.resolve()) in text, text
    assert "--out" in text
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert all(steps[name]["reused"] for name in STEPS if name != "report")


def test_a_dataset_with_synthetic_degradation_options_is_refused_before_any_step(tmp_path) -> None:
    from tests.data.layouts import make_layout

    data = make_layout(tmp_path / "data", "restormer")
    for extra in (["--degradation", "motion_blur"], ["--sigma", "15"]):
        result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--data", str(data), *extra])
        assert result.exit_code == 2 and "--degradation/--sigma do not apply" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_a_budget_below_the_initial_design_is_refused_before_any_step_in_runs_words(tmp_path) -> None:
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--budget", "4"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "--budget 4 is below the 16 random architectures" in text, text
    assert "--initial" not in text and not (tmp_path / "run").exists()


def test_a_run_keeps_to_a_2x_latency_bound_unless_told_otherwise() -> None:
    from edgeens.run import DEFAULT_SPEEDUP, RunConfig

    # Without a bound the candidates are picked by validation PSNR alone and the most teacher-like wins.
    assert RunConfig().latency_bound == DEFAULT_SPEEDUP == 2.0
    assert RunConfig(speedup=3.0).latency_bound == 3.0 and RunConfig(speedup=0).latency_bound is None
    assert RunConfig(penalty="heuristic").latency_bound is None  # the paper's penalty predicts no milliseconds
    for bad in (RunConfig(speedup=0.5), RunConfig(speedup=2.0, penalty="heuristic")):
        with pytest.raises(ValueError, match="--speedup needs a value above 1"):
            bad.check()


def test_a_speedup_no_architecture_reaches_is_refused_before_any_step(tmp_path) -> None:
    # The committed tiny table fits the default run: its fastest architecture is far from 1000x the teacher.
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--speedup", "1000"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "--speedup 1000 asks for" in text and "give --speedup" in text, text
    assert "(0: no bound, the knee)" in text
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name != ".lock"]  # nothing written


@pytest.mark.parametrize("problem", ["empty", "unmatched", "sizes differ", "truncated", "not an image", "too small"])
def test_a_bad_dataset_stops_edgeens_run_with_one_line_and_nothing_written(tmp_path, problem) -> None:
    from tests.data.test_task import bad_dataset

    named = bad_dataset(tmp_path / "data", problem)
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "data")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and text.startswith("error:") and "Traceback" not in text, text
    assert str(named) in text if named else "holds no input images" in text
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name != ".lock"]  # no data.json, no step's folder


def test_the_run_commands_defaults_are_run_configs() -> None:
    """One home for each default: every option of `edgeens run` that sets a RunConfig field defaults to that
    field's default (None: the command leaves the field to its default)."""
    import dataclasses

    import typer

    from edgeens.compare import parse_baselines
    from edgeens.compile.quantize import parse_precision
    from edgeens.run import RunConfig
    from edgeens.train.finetune import FinetunePatches

    config, patches = RunConfig(), FinetunePatches()
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    renamed = {"out": "run_dir", "teacher_path": "teacher"}
    parsed = {"baselines": parse_baselines, "quantize": parse_precision}
    in_patches = {"finetune_patch": "max_patch", "finetune_min_patch": "min_patch"}
    in_patches["finetune_batch_pixels"] = "batch_pixels"
    checked = 0
    for option in typer.main.get_command(app).commands["run"].params:
        name = renamed.get(option.name, option.name)
        if name in in_patches:
            assert option.default == getattr(patches, in_patches[name]), option.name
            checked += 1
        elif name in fields and option.default is not None:
            assert parsed.get(name, lambda v: v)(option.default) == getattr(config, name), option.name
            checked += 1
    assert checked >= 20  # the options left at None are the fields whose default the config decides
