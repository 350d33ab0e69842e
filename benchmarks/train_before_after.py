"""Training speed before and after a change: benchmarks/train.py at two commits, alternated over rounds on one machine.

    python benchmarks/train_before_after.py BEFORE AFTER [--rounds 2] [--json FILE] [-- train.py arguments]
    python benchmarks/train_before_after.py --markdown FILE    # the table of an earlier --json result

Each commit is checked out once into a temporary git worktree (this checkout's virtual environment runs both), and
the rounds alternate before, after, before, after... so that a machine's drift (the VM's speed varies from hour to
hour, other jobs come and go) reaches both sides alike. Per case the table gives each side's fastest step over the
rounds, the speed-up, and the step as a multiple of the teacher's in the same benchmark run (the ratio the issue's
targets are written in), as the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def run_rounds(commits: dict[str, str], rounds: int, train_args: list[str]) -> dict[str, list[dict]]:
    """benchmarks/train.py's JSON record per side and round."""
    results: dict[str, list[dict]] = {side: [] for side in commits}
    with tempfile.TemporaryDirectory(prefix="edgeens-before-after-") as scratch:
        trees = {side: Path(scratch) / side for side in commits}
        for side, commit in commits.items():
            git("worktree", "add", "--detach", str(trees[side]), commit)
        try:
            for round_ in range(1, rounds + 1):
                for side, tree in trees.items():
                    out = tree / "result.json"
                    print(f"round {round_}/{rounds}: {side} ({commits[side]})", flush=True)
                    subprocess.run(
                        [sys.executable, "benchmarks/train.py", *train_args, "--json", str(out)],
                        cwd=tree,
                        env={**os.environ, "PYTHONPATH": str(tree)},
                        check=True,
                    )
                    results[side].append(json.loads(out.read_text()))
        finally:
            for tree in trees.values():
                git("worktree", "remove", "--force", str(tree))
    return results


def markdown(record: dict) -> str:
    """Per case: fastest step on each side, speed-up, and the median step / teacher's of each side."""
    sides = list(record["commits"])

    def rows(side: str, case: str) -> list[dict]:
        return [
            r
            for result in record["results"][side]
            for r in result["rows"]
            if r["case"] == case and r["variant"] == "explicit" and "step_s" in r
        ]

    first = record["results"][sides[0]][0]
    cases = list(dict.fromkeys(r["case"] for r in first["rows"]))
    lines = [
        f"{first['device_name']}, {first['precision']}, {first['threads']} thread(s), batch {first['batch']} of "
        f"{first['patch']} px, preset {first['preset']}, torch {first['torch']}; {len(record['results'][sides[0]])} "
        f"alternated rounds; {sides[0]} = {record['commits'][sides[0]]}, {sides[1]} = {record['commits'][sides[1]]}",
        "",
        f"| case | step s, {sides[0]} | step s, {sides[1]} | speed-up | step / teacher's, {sides[0]} | "
        f"step / teacher's, {sides[1]} | peak GiB, {sides[0]} | peak GiB, {sides[1]} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        before, after = rows(sides[0], case), rows(sides[1], case)
        if not before or not after:
            continue
        fastest = [min(r["step_s"] for r in side) for side in (before, after)]
        ratio = [statistics.median(r["step_per_teacher"] for r in side) for side in (before, after)]
        peak = [max(r["peak_gib"] for r in side) for side in (before, after)]
        lines.append(
            f"| {case} | {fastest[0]:.3f} | {fastest[1]:.3f} | {fastest[0] / fastest[1]:.2f}x | {ratio[0]:.2f}x | "
            f"{ratio[1]:.2f}x | {peak[0]:.2f} | {peak[1]:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?")
    parser.add_argument("after", nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="Also write the results here.")
    parser.add_argument("--markdown", help="Print the table of an earlier --json result and stop.")
    arguments, train_args = sys.argv[1:], []
    if "--" in arguments:
        at = arguments.index("--")
        arguments, train_args = arguments[:at], arguments[at + 1 :]
    args = parser.parse_args(arguments)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if not args.before or not args.after:
        parser.error("give the two commits to compare (BEFORE AFTER), or --markdown FILE")
    commits = {"before": git("rev-parse", "--short", args.before), "after": git("rev-parse", "--short", args.after)}
    record = {
        "command": "python benchmarks/train_before_after.py " + " ".join(sys.argv[1:]),
        "commits": commits,
        "results": run_rounds(commits, args.rounds, train_args),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(markdown(record))


if __name__ == "__main__":
    main()
