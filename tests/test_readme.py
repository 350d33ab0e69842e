"""The results tables (README, docs/results.md) and the README's `make demo` sentence quote committed files: each
figure must match them."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCUMENTS = ["README.md", "docs/results.md"]
# The first cell names the task; the asset holds the teacher's test scores.
ASSETS = {"sigma 25": "gaussian25", "`rain_streaks`": "rain-streaks", "`motion_blur`": "motion-blur"}


def _results_rows(document: str) -> list[list[str]]:
    lines = (ROOT / document).read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and re.search(r"\d\.\d+x \(\S*reports/", line)]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


ROWS = [(document, row) for document in DOCUMENTS for row in _results_rows(document)]


def _numbers(cell: str) -> list[float]:
    return [float(number) for number in re.findall(r"-?\d+\.\d+", cell)]


def _report_rows(name: str) -> dict[str, dict]:
    report = json.loads((ROOT / "reports" / name / "report.json").read_text())
    return {row["model"]: row for row in report["compare"]["rows"]}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_table_has_the_three_tasks(document: str):
    tasks = [next(key for key in ASSETS if key in row[0]) for row in _results_rows(document)]
    assert sorted(tasks) == sorted(ASSETS)


@pytest.mark.parametrize(("document", "row"), ROWS, ids=[f"{d}-{r[0][:12]}" for d, r in ROWS])
def test_results_row_matches_its_asset_and_report(document: str, row: list[str]):
    task, teacher, degraded, classical, speedup, hybrid, _paper = row
    asset = json.loads(
        (ROOT / "edgeens/assets" / f"teacher-tiny-{ASSETS[next(k for k in ASSETS if k in task)]}.json").read_text()
    )
    references = {name: round(ref["psnr"], 2) for name, ref in asset["test_references"].items()}
    assert _numbers(teacher) == [round(asset["test_psnr"], 2)]
    assert _numbers(degraded) == [references["degraded input"]]
    assert _numbers(classical)[-1] in references.values(), classical

    report = re.search(r"reports/([\w-]+)", speedup).group(1)
    rows = _report_rows(report)
    ens, fine_tuned = rows["ENS hybrid"], rows["teacher, fine-tuned"]
    assert _numbers(speedup)[0] == round(ens["speedup"], 2)
    assert _numbers(hybrid) == [round(ens["psnr"], 2), round(ens["psnr"] - fine_tuned["psnr"], 2)]
    # A report made on an earlier teacher says so, with that teacher's figure.
    report_teacher = round(rows["teacher"]["psnr"], 2)
    if report_teacher != round(asset["test_psnr"], 2):
        assert f"on the previous {report_teacher:.2f} dB teacher" in speedup, speedup
    else:
        assert "previous" not in speedup


def test_make_demo_sentence_matches_its_report():
    match = re.search(
        r"reaches (\d+\.\d+)x at (\d+\.\d+) dB\s+below the teacher fine-tuned as long \(\[reports/demo\]", README
    )
    assert match, "the README's `make demo` sentence changed: update this test with it"
    rows = _report_rows("demo")
    assert float(match.group(1)) == round(rows["ENS hybrid"]["speedup"], 2)
    assert float(match.group(2)) == round(rows["teacher, fine-tuned"]["psnr"] - rows["ENS hybrid"]["psnr"], 2)
