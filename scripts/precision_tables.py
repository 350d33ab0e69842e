"""Two latency tables of one space side by side, per stage choice: what a precision buys block by block.

    python scripts/precision_tables.py FLOAT_TABLE QUANTIZED_TABLE [ARCHITECTURE ...]

Prints a markdown table (stage, choice, float ms, quantized ms, speed-up) and, for each architecture given (the
teacher's always), both tables' predictions. Both tables must time the same space at the same size; they are two
measurements, so their ratio carries whatever the machine did between them: measure them back to back.
"""

from __future__ import annotations

import sys

from edgeens.profile.table import LatencyTable


def main(float_path: str, quantized_path: str, architectures: list[str]) -> str:
    first, second = LatencyTable.load(float_path), LatencyTable.load(quantized_path)
    first.check_fits(second.space, second.height, second.width)  # the float table may hold more families
    pairs = {"fixed": (first.fixed, second.fixed)}
    pairs |= {
        f"{s}--{c}": (first.stages[s][c], latency) for s, row in second.stages.items() for c, latency in row.items()
    }
    lines = [
        f"{first.runtime_label} against {second.runtime_label}, {first.height}x{first.width}, "
        f"{first.threads} thread(s); {first.date} and {second.date}.",
        "",
        f"| stage | choice | {first.precision} ms | {second.precision} ms | speed-up |",
        "|---|---|---|---|---|",
    ]
    for key, (a, b) in pairs.items():
        stage, _, choice = key.partition("--")
        lines.append(
            f"| {stage} | {choice or '-'} | {a.median_ms:.1f} | {b.median_ms:.1f} | {a.median_ms / b.median_ms:.2f}x |"
        )
    teacher = "-".join(second.space.teacher_only)
    lines += ["", f"| architecture | {first.precision} predicted ms | {second.precision} predicted ms | speed-up |"]
    lines.append("|---|---|---|---|")
    for architecture in dict.fromkeys([teacher, *architectures]):
        a, b = first.predict_ms(architecture), second.predict_ms(architecture)
        lines.append(f"| {architecture} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
