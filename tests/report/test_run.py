from __future__ import annotations

from edgeens.report.run import given_up
from edgeens.rundir import TEACHER_FINETUNED


def comparison(speedup: float, ens_psnr: float, retrained_psnr: float | None, nlm_psnr: float) -> dict:
    rows = [
        {"model": "teacher", "psnr": 31.6, "speedup": 1.0, "speedup_from": "measured"},
        {"model": "ENS hybrid", "psnr": ens_psnr, "speedup": speedup, "speedup_from": "measured"},
    ]
    if retrained_psnr is not None:
        rows.append({"model": TEACHER_FINETUNED, "psnr": retrained_psnr, "speedup": 1.0, "speedup_from": "predicted"})
    references = [{"model": "degraded input", "psnr": 20.2}, {"model": "non-local means", "psnr": nlm_psnr}]
    return {"rows": rows, "references": references}


def test_a_report_says_first_which_part_of_the_bar_its_hybrid_gives_up() -> None:
    assert given_up(comparison(2.3, 31.2, 31.5, 30.6)) == []
    # make demo on 2026-12-06 at 1000 iterations: fast and above NLM, 0.79 dB below the teacher fine-tuned as long.
    (quality,) = given_up(comparison(2.31, 30.78, 31.57, 30.56))
    assert quality.startswith("quality: 0.79 dB below the teacher fine-tuned as long")
    missed = given_up(comparison(0.95, 30.4, 31.5, 30.56))  # make demo on 2026-12-05, without a latency bound
    assert missed[0] == "speed: 0.95x measured, below 1.5x" and "non-local means (30.56 dB)" in missed[-1]
    assert given_up(comparison(2.0, 30.0, None, 29.0)) == []  # nothing to compare the gap with: not claimed missed
