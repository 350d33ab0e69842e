"""Keep a long job's resumable state in the repository, so that a lost machine costs the time since the last
milestone, not the job (run folders under runs/ are not committed, and a new machine starts from what is).

    python scripts/milestone.py save runs/tiny-2x [--command "THE COMMAND THAT RESUMES IT"]
    python scripts/milestone.py restore runs/tiny-2x

`save` makes milestones/<name>/ a copy of the run folder's files (then `git add milestones/<name>` and commit);
`restore` copies it back into a run folder that does not exist yet, and changes nothing when one does. The same
command then resumes the job from its last checkpoint.

Left out, because the job rebuilds them: exported programs (*.pte, *.onnx), stage programs, the teacher's captured
features (re-captured from the same seeded crops), lock and temporary files, and the resumable checkpoint of a
training that has finished (its weights and summary stay).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

MILESTONES = Path(__file__).resolve().parent.parent / "milestones"
RECORD = "MILESTONE.json"
REBUILT_SUFFIXES = (".pte", ".onnx", ".data")
REBUILT_FOLDERS = ("features",)  # and stages-* (stage programs)
CHECKPOINT = "checkpoint.pt"


def _finished_here(folder: Path) -> bool:
    """Whether a training in `folder` has written a summary that says it finished."""
    for summary in folder.glob("*.json"):
        try:
            if json.loads(summary.read_text()).get("finished") is True:
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def kept_files(run: Path) -> Iterator[Path]:
    """The files of `run` a milestone keeps, relative to it, resumable checkpoints first: a checkpoint copied
    before the log it belongs to never runs ahead of it (a resume truncates a log to its checkpoint)."""
    files = []
    for path in sorted(run.rglob("*")):
        relative = path.relative_to(run)
        if not path.is_file() or path.is_symlink():
            continue
        parts = relative.parts
        if any(part.startswith(".") or part in REBUILT_FOLDERS or part.startswith("stages-") for part in parts):
            continue
        if path.suffix in REBUILT_SUFFIXES or ".tmp" in path.name:
            continue
        if path.name == CHECKPOINT and _finished_here(path.parent):
            continue
        files.append(relative)
    yield from sorted(files, key=lambda relative: relative.name != CHECKPOINT)


def save(run: Path, command: str | None, milestones: Path = MILESTONES) -> Path:
    """Make `milestones/<run name>` the kept files of `run` (files gone from `run` go from the milestone too)."""
    if not (run / "run.json").is_file() and not (run / "log.jsonl").is_file():
        raise SystemExit(f"error: {run} is not a run folder (no run.json or log.jsonl): nothing saved")
    target = milestones / run.name
    kept = []
    for relative in kept_files(run):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(destination.name + ".tmp")
        try:
            shutil.copyfile(run / relative, temporary)
        except FileNotFoundError:  # the running job removed it meanwhile (a surrogate's partial state, finished)
            continue
        temporary.replace(destination)
        kept.append(relative)
    wanted = {target / relative for relative in kept} | {target / RECORD}
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    record = {
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "from": str(run),
        "command": command,
        "files": len(kept),
        "bytes": sum((target / relative).stat().st_size for relative in kept),
    }
    (target / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return target


def restore(run: Path, milestones: Path = MILESTONES) -> bool:
    """Copy `milestones/<run name>` into `run` when `run` does not exist (or is empty); True if it did."""
    source = milestones / run.name
    if not (source / RECORD).is_file():
        print(f"no milestone of {run.name} in {milestones}: nothing restored")
        return False
    if run.exists() and any(run.iterdir()):
        print(f"{run} exists: nothing restored (a milestone never overwrites a run folder)")
        return False
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != RECORD:
            destination = run / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    record = json.loads((source / RECORD).read_text())
    print(f"restored {run} from its milestone of {record['saved']} ({record['files']} files)")
    if record.get("command"):
        print(f"resume it with: {record['command']}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "restore"))
    parser.add_argument("run", type=Path, help="the run folder, e.g. runs/tiny-2x")
    parser.add_argument("--command", help="the command that resumes the job (save only), kept with the milestone")
    args = parser.parse_args(argv)
    if args.action == "save":
        target = save(args.run, args.command)
        record = json.loads((target / RECORD).read_text())
        print(f"saved {args.run} to {target}: {record['files']} files, {record['bytes'] / 2**20:.1f} MiB")
    else:
        restore(args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
