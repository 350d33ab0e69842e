"""The AI Hub validation path end to end against the test Hub (tests/local_hub.py), which runs the uploaded programs
on this machine: the same command a user with a token runs, with the phone replaced by this CPU.

    python benchmarks/hub_validation.py [--size 256] [--validate 30] [--families M,L,S,G] [--out /tmp/hub-validation]

Runs `edgeens profile --preset tiny --device "Snapdragon 8 Elite" --validate N --compute-unit cpu` with the test Hub
installed (eager PyTorch, 1 thread, `--iterations` timed runs per job) and prints the correlation figures beside the
host validation's (reports/validation--host--...--tiny-<families>.json, ExecuTorch programs on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.local_hub, from a checkout

from typer.testing import CliRunner  # noqa: E402

import edgeens.compile.aihub as aihub  # noqa: E402
from edgeens.cli import app  # noqa: E402
from tests.local_hub import LocalHub  # noqa: E402

FIGURES = ("pearson", "spearman", "kendall_tau_b", "mape", "within_10pct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256")
    parser.add_argument("--validate", type=int, default=30)
    parser.add_argument("--families", default="M,L,S,G")
    parser.add_argument("--iterations", type=int, default=5, help="timed runs per profile job (the service: 100)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/hub-validation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ini = args.out / "client.ini"
    ini.write_text("[api]\napi_token = test-hub-token\n")
    os.environ["QAIHUB_CLIENT_INI"] = str(ini)
    hub = LocalHub(steps_to_finish=1, max_iterations=args.iterations)
    aihub.import_hub = lambda: hub
    command = ["profile", "--preset", "tiny", "--families", args.families, "--size", args.size]
    command += ["--device", "Snapdragon 8 Elite", "--compute-unit", "cpu", "--validate", str(args.validate)]
    command += ["--programs", str(args.out / "programs"), "--out", str(args.out / "profiles")]
    command += ["--reports", str(args.out / "reports"), "--hub-poll", "0"]
    start = time.perf_counter()
    result = CliRunner().invoke(app, command)
    seconds = time.perf_counter() - start
    print(result.output[-3000:])
    if result.exit_code != 0:
        raise SystemExit(result.exit_code)
    suffix = "tiny-" + args.families.replace(",", "").lower()
    size = f"{args.size}x{args.size}" if "x" not in args.size else args.size
    name = f"validation--snapdragon-8-elite-qrd--aihub-tflite-cpu--{size}--{suffix}.json"
    hub_report = json.loads((args.out / "reports" / name).read_text())
    host_path = Path("reports") / f"validation--host--executorch-xnnpack--{size}--{suffix}.json"
    host = json.loads(host_path.read_text())["calibrated"] if host_path.is_file() else {}
    print(f"{len(hub.submitted)} test-Hub jobs, {seconds:.0f} s; {hub_report['architectures']} architectures")
    print(f"{'figure':<14} {'test Hub (eager, this CPU)':>28} {'host (ExecuTorch)':>20}")
    for name in FIGURES:
        print(f"{name:<14} {hub_report['calibrated'][name]:>28.3f} {host.get(name, float('nan')):>20.3f}")


if __name__ == "__main__":
    main()
