from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeens.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()


def test_inspect_prints_the_inferred_configuration() -> None:
    result = runner.invoke(app, ["inspect", str(FIXTURES / "restormer_small_dualpixel.state_dict.safetensors")])
    assert result.exit_code == 0, result.output
    assert "Restormer: 1,115,827 parameters" in result.output
    assert "dual_pixel_task = True" in result.output


def test_inspect_reports_a_bad_checkpoint_without_a_traceback(tmp_path) -> None:
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint at all")
    result = runner.invoke(app, ["inspect", str(tmp_path / "broken.pth")])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


def test_teacher_trains_a_few_iterations_and_resumes(tmp_path) -> None:
    args = ["teacher", "--out", str(tmp_path), "--iterations", "3", "--max-patch", "16", "--checkpoint-every", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation PSNR" in result.output
    assert (tmp_path / "teacher.safetensors").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_teacher_with_the_same_seed_trains_the_same_weights(tmp_path) -> None:
    import json

    from safetensors.torch import load_file

    for run in ("a", "b"):
        args = ["teacher", "--out", str(tmp_path / run), "--iterations", "2", "--max-patch", "16", "--bundled"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    first = [json.loads((tmp_path / r / "log.jsonl").read_text().splitlines()[0])["loss"] for r in ("a", "b")]
    assert first[0] == first[1]
    a, b = (load_file(str(tmp_path / r / "teacher.safetensors")) for r in ("a", "b"))
    assert all(a[k].equal(b[k]) for k in a)


def test_teacher_warm_starts_from_trained_weights_and_records_them(tmp_path) -> None:
    import json

    from safetensors.torch import load_file

    first = ["teacher", "--out", str(tmp_path / "a"), "--iterations", "2", "--max-patch", "16", "--bundled"]
    assert runner.invoke(app, first).exit_code == 0
    init = tmp_path / "a" / "teacher.safetensors"
    warm = ["teacher", "--out", str(tmp_path / "b"), "--init", str(init), "--iterations", "1", "--lr", "1e-8"]
    warm += ["--constant-fraction", "0", "--min-patch", "16", "--max-patch", "16", "--seed", "7", "--bundled"]
    result = runner.invoke(app, warm)
    assert result.exit_code == 0, result.output
    before, after = load_file(str(init)), load_file(str(tmp_path / "b" / "teacher.safetensors"))
    # one step at the schedule's floor (eta_min 1e-6) leaves the warm start's weights where they were, not at a
    # fresh random draw
    assert all((before[k] - after[k]).abs().max() < 1e-5 for k in before)
    recipe = json.loads((tmp_path / "b" / "teacher.json").read_text())["recipe"]
    assert recipe["init_weights"].startswith(str(init)) and "sha256" in recipe["init_weights"]
    assert recipe["lr"] == 1e-8 and recipe["seed"] == 7 and set(recipe["schedule"]["patch_sizes"]) == {16}
    hybrid = ["teacher", "--out", str(tmp_path / "c"), "--init", str(tmp_path / "missing.safetensors")]
    failed = runner.invoke(app, hybrid)
    assert failed.exit_code == 2 and "Traceback" not in failed.output


def test_teacher_adopts_an_official_checkpoint(tmp_path) -> None:
    ckpt = FIXTURES / "restormer_small_biasfree.state_dict.safetensors"
    result = runner.invoke(app, ["teacher", "--out", str(tmp_path), "--checkpoint", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert '"LayerNorm_type": "BiasFree"' in (tmp_path / "teacher.json").read_text()


def test_teacher_reports_a_bad_data_folder(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    result = runner.invoke(app, ["teacher", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "data")])
    assert result.exit_code == 2 and "needs an input folder" in " ".join(result.output.split())


def test_teacher_trains_on_16_bit_dpdd_dual_pixel_views(tmp_path) -> None:
    import numpy as np

    from edgeens.data.images import write_image
    from edgeens.models import Restormer

    rng = np.random.default_rng(0)
    for view, folder in (("l", "source"), ("r", "source"), ("c", "target")):
        for n in range(3):  # a pair each for train, val and test (DPDD's own split has no val folder here)
            path = tmp_path / "dpdd" / f"train_{view}" / folder / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, rng.random((40, 48, 3)), bits=16)
    args = ["teacher", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "dpdd"), "--dual-pixel"]
    result = runner.invoke(app, [*args, "--iterations", "2", "--max-patch", "16"])
    assert result.exit_code == 0, result.output
    teacher = Restormer.from_checkpoint(tmp_path / "run" / "teacher.safetensors")
    assert teacher.config.inp_channels == 6 and teacher.config.dual_pixel_task
    # Validated on the dataset's own validation pair, not on the bundled photos with Gaussian noise.
    assert "on the validation pairs of paired folders" in " ".join(result.output.split())
    missing = runner.invoke(app, ["teacher", "--out", str(tmp_path / "x"), "--dual-pixel"])
    assert missing.exit_code == 2 and "--data" in missing.output


def test_compile_writes_a_checked_onnx_artifact(tmp_path) -> None:
    checkpoint = FIXTURES / "restormer_small_withbias.state_dict.safetensors"
    args = ["compile", str(checkpoint), "--size", "16", "--target", "onnx", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "onnx: model.onnx" in result.output and "max abs error" in result.output
    assert (tmp_path / "compile.json").is_file() and (tmp_path / "model.onnx").is_file()


def test_compile_quantizes_on_the_tasks_training_crops_and_int8_is_a_deprecated_alias(tmp_path) -> None:
    from tests.data.layouts import make_layout

    checkpoint = FIXTURES / "restormer_small_withbias.state_dict.safetensors"
    data = make_layout(tmp_path / "pairs", "restormer", count=10)
    args = ["compile", str(checkpoint), "--size", "16", "--target", "onnx", "--data", str(data)]
    result = runner.invoke(app, [*args, "--quantize", "w8a16", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "calibrating on 16 training crops of paired folders" in " ".join(result.output.split())
    manifest = json.loads((tmp_path / "a" / "compile.json").read_text())
    assert manifest["targets"]["onnx--w8a16"]["precision"] == "w8a16" and "onnx" in manifest["targets"]
    old = runner.invoke(app, [*args, "--int8", "--calibration-images", "2", "--out", str(tmp_path / "b")])
    assert old.exit_code == 0 and "--int8 is deprecated" in old.output, old.output
    assert "onnx--w8a8" in json.loads((tmp_path / "b" / "compile.json").read_text())["targets"]
    refused = runner.invoke(app, [*args, "--quantize", "w8a16", "--target", "executorch", "--out", str(tmp_path / "c")])
    assert refused.exit_code == 2 and "no 16-bit activations" in " ".join(refused.output.split())
    scoped = runner.invoke(app, [*args, "--quantize", "w8a8", "--scope", "most", "--out", str(tmp_path / "d")])
    assert scoped.exit_code == 2 and "unknown quantization scope 'most'" in scoped.output, scoped.output


def test_compile_bad_inputs_exit_with_a_message(tmp_path, monkeypatch) -> None:
    checkpoint = str(FIXTURES / "restormer_small_withbias.state_dict.safetensors")
    cases = [
        (["compile", checkpoint, "--size", "250"], "multiple of 8"),
        (["compile", str(tmp_path / "missing.pth")], "does not exist"),
        (["compile"], "name exactly one model"),
        (["compile", "--teacher", checkpoint, "--arch", "R-R-R-R-R-R-R-R", "--pool", str(tmp_path)], "block pool"),
        (["compile", "--untrained", "tiny", "--kind", "hybrid", "--arch", "R-M9-R-R-R-R-R-R"], "not a choice"),
    ]
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "no-such.ini"))
    cases.append(
        (
            [
                "compile",
                checkpoint,
                "--size",
                "16",
                "--target",
                "aihub",
                "--aihub-device",
                "Samsung Galaxy S25",
                "--out",
                str(tmp_path / "hub"),
            ],
            "qai-hub configure --api_token",
        )
    )
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output


OUT_CASES = {  # every command that writes, with the cheapest inputs that reach its output folder
    "teacher": ["teacher", "--iterations", "1", "--max-patch", "16", "--bundled", "--out", "{out}"],
    "distill": ["distill", "--teacher", "{teacher}", "--crops", "4", "--patch", "16", "--steps", "1", "--out", "{out}"],
    "profile": ["profile", "--preset", "tiny", "--size", "8", "--programs", "{tmp}/programs", "--out", "{out}"],
    "search": ["search", "--teacher", "{teacher}", "--pool", "{pool}", "--penalty", "heuristic", "--size", "16"]
    + ["--budget", "2", "--initial", "2", "--out", "{out}"],
    "finetune": ["finetune", "--teacher", "{teacher}", "--pool", "{pool}", "--arch", "R-R-R-R-R-R-R-R"]
    + ["--iterations", "1", "--out", "{out}"],
    "compile": ["compile", "--untrained", "tiny", "--size", "8", "--target", "onnx", "--out", "{out}"],
    "restore": ["restore", "{tmp}/photo.png", "--model", "{teacher}", "--out", "{out}"],
    "bench": ["bench", "--baseline", "wavelet", "--split", "bundled", "--out", "{out}"],
    "sweep": ["sweep", "--sizes", "8", "--reports", "{out}"],
    "run": ["run", "--steps", "teacher", "--out", "{out}"],
}


@pytest.mark.parametrize("blocked", ["a file", "under a file", "read-only"])
@pytest.mark.parametrize("command", list(OUT_CASES))
def test_an_output_folder_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path, small_run, monkeypatch, command: str, blocked: str
) -> None:
    import errno
    import os
    import tempfile

    from edgeens import files
    from edgeens.data.images import write_image

    if blocked == "read-only" and os.geteuid() == 0:  # root writes through 0o500: the file system says no instead
        real = tempfile.TemporaryFile

        def read_only(*args, dir=None, **kwargs):
            if dir is not None and str(dir).startswith(str(tmp_path / "locked")):
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(files.tempfile, "TemporaryFile", read_only)
    write_image(tmp_path / "photo.png", np.full((16, 16, 3), 0.5, np.float32))
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = {"a file": blocker, "under a file": blocker / "out", "read-only": locked / "out"}[blocked]
    fields = {"out": out, "tmp": tmp_path, "teacher": small_run / "teacher.safetensors", "pool": small_run / "pool"}
    result = runner.invoke(app, [arg.format(**fields) for arg in OUT_CASES[command]])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "error:" in text and "Traceback" not in text, text
    assert str(out) in text and "cannot be written" in text and "choose another folder" in text, text
    assert blocker.read_text() == "mine"
    assert not (tmp_path / "programs").exists()  # profile refused before building a program


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["restore", "x.png", "--threads", "999"], "more than this machine's"),
        (["distill", "--jobs", "999"], "more than this machine's"),
        (["run", "--jobs", "0"], "at least 1"),
        (["distill", "--patch", "60"], "positive multiple of 8"),
        (["teacher", "--max-patch", "100000"], "larger than 2048"),
        (["teacher", "--min-patch", "12"], "positive multiple of 8"),
        (["restore", "x.png", "--tile", "13"], "positive multiple of 8"),
        (["bench", "--tile", "4096"], "larger than 2048"),
        (["profile", "--preset", "tiny", "--size", "0"], "positive"),
        (["compile", "--untrained", "tiny", "--size", "-8"], "positive"),
        (["run", "--size", "99992"], "at most 2048"),
        (["run", "--finetune-patch", "60"], "positive multiple of 8"),
        (["run", "--finetune-min-patch", "128"], "fine-tuning patches: the smallest patch must be 8..64"),
        (["run", "--finetune-batch-pixels", "-1"], "greater than or equal to 0"),
    ],
)
def test_an_option_that_cannot_work_is_refused_before_anything_runs(args: list[str], says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.replace("│", " ").split()) and "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["teacher", "--iterations", "1"],
        ["distill"],
        ["finetune"],
        ["search"],
        ["restore", "x.png", "--model", "m.safetensors"],
        ["bench", "--baseline", "nlm"],
        ["run", "--torch-device", "cuda"],
    ],
)
def test_every_command_with_a_device_refuses_a_gpu_this_machine_lacks_in_one_line(command, tmp_path) -> None:
    device = [] if command[0] == "run" else ["--torch-device", "cuda"]
    out = ["--out", str(tmp_path / "out")] if command[0] not in ("distill", "search", "finetune") else []
    result = runner.invoke(app, [*command, *device, *out])
    assert result.exit_code == 2, result.output
    assert "sees no CUDA GPU" in result.output and "--torch-device cpu" in result.output
    assert "Traceback" not in result.output
    if command[0] != "run":  # the old spelling still works for one release, and says so
        old = runner.invoke(app, [*command, "--device", "cuda", *out])
        assert old.exit_code == 2 and "sees no CUDA GPU" in old.output
        assert "--device here means --torch-device" in " ".join(old.output.split()), old.output


def test_a_negative_search_seed_is_refused_naming_the_option(tmp_path) -> None:
    result = runner.invoke(app, ["search", "--seed", "-1", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "--seed" in result.output and not (tmp_path / "s").exists()


def test_a_teacher_is_not_trained_on_images_smaller_than_its_patches(tmp_path) -> None:
    from tests.data.layouts import make_layout, write_pair

    data = make_layout(tmp_path / "data", "restormer", count=3)
    write_pair(data / "input" / "dot.png", data / "target" / "dot.png", np.random.default_rng(0), size=(1, 1))
    args = ["teacher", "--data", str(data), "--iterations", "1", "--max-patch", "16", "--out", str(tmp_path / "t")]
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "dot.png is 1x1" in text, text
    assert not (tmp_path / "t" / "checkpoint.pt").exists()


def test_every_commands_defaults_are_its_requests() -> None:
    """One home for each default: an option named as a field of the request (or recipe) its command builds
    defaults to that field's default, except where the command resolves the value or scales the recipe down."""
    import dataclasses

    import typer

    from edgeens.compile.pipeline import CompileOptions
    from edgeens.profile.request import ProfileRequest, TimingPolicy
    from edgeens.search.ens import SearchSettings
    from edgeens.search.step import SearchRequest
    from edgeens.train.distill import DistillRecipe, DistillRequest
    from edgeens.train.finetune import FinetunePatches, FinetuneRequest
    from edgeens.train.loop import TrainingRecipe
    from edgeens.train.teacher import TeacherRequest

    homes = {
        "search": (SearchSettings, SearchRequest),
        "profile": (TimingPolicy, ProfileRequest),
        "distill": (DistillRequest, DistillRecipe),
        "finetune": (FinetuneRequest, FinetunePatches),
        "teacher": (TrainingRecipe, TeacherRequest),
        "compile": (CompileOptions,),
    }
    resolved = {"device", "precision"}  # "auto": edgeens.devices picks the torch device and precision
    # Restormer's 300k iterations (checkpointed every 1000) in the recipe; the command trains the tiny preset.
    scaled = {("teacher", "iterations"), ("teacher", "checkpoint_every")}
    commands = typer.main.get_command(app).commands
    checked = 0
    for command, classes in homes.items():
        for option in commands[command].params:
            for cls in classes:
                field = next((f for f in dataclasses.fields(cls) if f.name == option.name), None)
                if field is None or field.default is dataclasses.MISSING or option.name in resolved:
                    continue
                if option.default is None or (command, option.name) in scaled:  # None: the field's default
                    continue
                default = option.default
                if isinstance(field.default, tuple) and isinstance(default, str):  # a comma-separated list
                    default = tuple(default.split(","))
                assert default == field.default, (command, option.name, cls.__name__)
                checked += 1
    assert checked >= 35


def test_a_long_line_goes_into_a_log_file_whole() -> None:
    from edgeens.cli.options import console

    assert not console.is_terminal, "run under pytest's output capture (this test is about a log file)"
    line = "compare: training " + ", ".join(f"row {i} of the comparison" for i in range(8)) + ", 2 at a time"
    with console.capture() as captured:
        console.print(line)
    assert len(line) > 80 and captured.get() == line + "\n"  # rich would wrap it at 80 columns
