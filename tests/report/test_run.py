from __future__ import annotations

from pathlib import Path

from edgeens.report.run import given_up, verdict
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
    assert verdict(comparison(2.3, 31.2, 31.5, 30.6)).startswith("The ENS hybrid holds the bar")
    # make demo on 2026-12-06 at 1000 iterations: fast and above NLM, 0.79 dB below the teacher fine-tuned as long.
    (quality,) = given_up(comparison(2.31, 30.78, 31.57, 30.56))
    assert quality.startswith("quality: 0.79 dB below the teacher fine-tuned as long")
    missed = given_up(comparison(0.95, 30.4, 31.5, 30.56))  # make demo on 2026-12-05, without a latency bound
    assert missed[0] == "speed: 0.95x measured, below 1.5x" and "non-local means (30.56 dB)" in missed[-1]
    assert given_up(comparison(2.0, 30.0, None, 29.0)) == []  # nothing to compare the gap with: not claimed missed


def test_a_deconvolution_told_the_kernel_places_the_teacher_but_is_no_bar_for_the_hybrid() -> None:
    from edgeens.classical import NON_BLIND

    deblurring = comparison(2.34, 28.76, 29.0, 0.0)  # reports/tiny-deblur's hybrid, 0.24 dB from the teacher retrained
    deblurring["references"] = [
        {"model": "degraded input", "note": "the input as it is", "psnr": 27.90},
        {"model": "Wiener", "note": NON_BLIND, "psnr": 30.24},
        {"model": "Richardson-Lucy", "note": NON_BLIND, "psnr": 30.81},
    ]
    assert given_up(deblurring) == []
    assert verdict(deblurring).endswith(
        "above the degraded input (Wiener and Richardson-Lucy, told each photo's kernel, place the teacher, not the "
        "hybrid)."
    )
    assert verdict(comparison(2.3, 31.2, 31.5, 30.6)).endswith("above every classical reference.")
    deblurring["references"].append({"model": "a blind deblurrer", "note": "blind", "psnr": 29.5})
    assert given_up(deblurring) == ["quality: at or below a blind deblurrer (29.50 dB)"]
    deblurring["references"][-1]["psnr"] = 28.0
    assert "above every blind classical reference (Wiener and Richardson-Lucy" in verdict(deblurring)


def test_the_comparison_gives_each_trained_row_its_wall_time_when_the_rows_were_timed() -> None:
    from edgeens.report.run import _comparison

    row = {"architecture": "R", "ssim": 0.9, "measured_ms": 100.0, "predicted_ms": 90.0}
    rows = [
        {**row, "model": "teacher", "psnr": 31.6, "speedup": 1.0, "speedup_from": "m", "train_seconds": None},
        {**row, "model": "ENS hybrid", "psnr": 31.0, "speedup": 2.0, "speedup_from": "m", "train_seconds": 1800.0},
        {**row, "model": "MambaIR only", "psnr": 30.0, "speedup": 0.5, "speedup_from": "p", "train_seconds": 9000.0},
    ]
    title, (text, table) = _comparison({"rows": rows, "references": [], "iterations": 6000})
    assert table[0][-1] == "training wall time" and [r[-1] for r in table[1:]] == ["", "30 min", "2.5 h"]
    assert "summed over the run's restarts" in text
    for r in rows:  # a compare.json from before rows were timed: no column rather than an empty one
        del r["train_seconds"]
    _, (_, table) = _comparison({"rows": rows, "references": [], "iterations": 6000})
    assert table[0][-1] == "speed-up"


def test_an_embedded_teacher_is_named_by_its_place_in_the_package_not_the_checkout(tmp_path) -> None:
    import json

    import edgeens
    from edgeens.report.run import _data_and_teacher
    from edgeens.rundir import RunFolder

    run = RunFolder(tmp_path / "run")
    run.teacher.mkdir(parents=True)
    asset = Path(edgeens.__file__).parent / "assets" / "teacher-tiny-gaussian25.safetensors"
    for source, shown in [(asset, "edgeens/assets/teacher-tiny-gaussian25.safetensors"), (tmp_path / "t.pt", None)]:
        (run.teacher / "teacher.json").write_text(json.dumps({"source": str(source)}))
        _, items = _data_and_teacher(run)
        assert items[-1] == f"Teacher: `{shown or source}`, adopted as it is."
