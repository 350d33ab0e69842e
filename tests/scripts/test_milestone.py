import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "milestone", Path(__file__).resolve().parents[2] / "scripts" / "milestone.py"
)
milestone = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(milestone)


def _run_folder(root: Path) -> Path:
    run = root / "runs" / "job"
    (run / "features").mkdir(parents=True)
    (run / "features" / "encoder1.train.safetensors").write_bytes(b"f" * 10)
    (run / "pool" / "partial").mkdir(parents=True)
    (run / "pool" / ".lock").write_text("pid 1")
    (run / "pool" / "partial" / "encoder1-M2.pt").write_bytes(b"partial")
    (run / "stages-tiny-256x256").mkdir()
    (run / "stages-tiny-256x256" / "encoder1-R.pte").write_bytes(b"program")
    (run / "export").mkdir()
    (run / "export" / "model.onnx").write_bytes(b"onnx")
    (run / "run.json").write_text("{}")
    done = run / "finetune" / "candidate-0"
    done.mkdir(parents=True)
    (done / "checkpoint.pt").write_bytes(b"done")
    (done / "summary.json").write_text(json.dumps({"finished": True}))
    (done / "hybrid.safetensors").write_bytes(b"weights")
    going = run / "compare" / "mambair-only"
    going.mkdir(parents=True)
    (going / "checkpoint.pt").write_bytes(b"resume me")
    (going / "log.jsonl").write_text('{"iteration": 50}\n')
    (going / "checkpoint.pt.123.tmp").write_bytes(b"half")
    return run


def test_save_keeps_what_resumes_and_leaves_out_what_is_rebuilt(tmp_path):
    run = _run_folder(tmp_path)
    target = milestone.save(run, "edgeens run --out runs/job", milestones=tmp_path / "milestones")
    kept = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert kept == [
        "MILESTONE.json",
        "compare/mambair-only/checkpoint.pt",
        "compare/mambair-only/log.jsonl",
        "finetune/candidate-0/hybrid.safetensors",
        "finetune/candidate-0/summary.json",
        "pool/partial/encoder1-M2.pt",
        "run.json",
    ]
    record = json.loads((target / "MILESTONE.json").read_text())
    assert record["command"] == "edgeens run --out runs/job" and record["files"] == 6


def test_checkpoints_are_copied_before_their_logs(tmp_path):
    order = [p.name for p in milestone.kept_files(_run_folder(tmp_path))]
    assert order.index("checkpoint.pt") < order.index("log.jsonl")


def test_save_again_mirrors_the_run_folder(tmp_path):
    run = _run_folder(tmp_path)
    milestones = tmp_path / "milestones"
    milestone.save(run, None, milestones=milestones)
    (run / "pool" / "partial" / "encoder1-M2.pt").unlink()  # that surrogate finished
    (run / "pool" / "encoder1-M2.safetensors").write_bytes(b"surrogate")
    target = milestone.save(run, None, milestones=milestones)
    assert not (target / "pool" / "partial").exists()
    assert (target / "pool" / "encoder1-M2.safetensors").read_bytes() == b"surrogate"


def test_restore_fills_a_new_folder_and_never_touches_an_existing_one(tmp_path, capsys):
    run = _run_folder(tmp_path)
    milestones = tmp_path / "milestones"
    milestone.save(run, "edgeens run --out runs/job", milestones=milestones)
    fresh = tmp_path / "elsewhere" / "job"
    assert milestone.restore(fresh, milestones=milestones)
    assert (fresh / "compare" / "mambair-only" / "checkpoint.pt").read_bytes() == b"resume me"
    assert not (fresh / "MILESTONE.json").exists()
    assert "resume it with: edgeens run --out runs/job" in capsys.readouterr().out
    (fresh / "run.json").write_text('{"mine": 1}')
    assert not milestone.restore(fresh, milestones=milestones)
    assert (fresh / "run.json").read_text() == '{"mine": 1}'
    assert not milestone.restore(tmp_path / "runs" / "other", milestones=milestones)


def test_a_file_the_running_job_removes_meanwhile_is_left_out(tmp_path, monkeypatch):
    run = _run_folder(tmp_path)
    files = list(milestone.kept_files(run))
    partial = run / "pool" / "partial" / "encoder1-M2.pt"

    def listing_then_removal(folder):
        partial.unlink()  # the surrogate finished between the listing and its copy
        yield from files

    monkeypatch.setattr(milestone, "kept_files", listing_then_removal)
    target = milestone.save(run, None, milestones=tmp_path / "milestones")
    assert not (target / "pool" / "partial").exists() and (target / "run.json").is_file()
    assert json.loads((target / "MILESTONE.json").read_text())["files"] == len(files) - 1


def test_save_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(SystemExit, match="not a run folder"):
        milestone.save(tmp_path, None, milestones=tmp_path / "milestones")
