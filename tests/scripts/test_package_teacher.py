import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "package_teacher", Path(__file__).resolve().parents[2] / "scripts" / "package_teacher.py"
)
package_teacher = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(package_teacher)


def test_a_continued_teachers_curve_starts_after_every_earlier_stage() -> None:
    # The deblurring teacher's record: 2750 iterations, continued 2000, then 4000. Its next continuation's log goes
    # after iteration 8750 (summing two levels only put it at 6000, over the last stage's curve).
    record = {"iterations": 4000, "warm_started_from": {"iterations": 2000, "warm_started_from": {"iterations": 2750}}}
    assert package_teacher.chain_iterations(record) == 8750
    assert package_teacher.chain_iterations({"iterations": 1500}) == 1500
