from __future__ import annotations

import pytest
import torch

from edgeens.compile.executorch import lower_to_executorch, run_program
from edgeens.models import Restormer


@pytest.mark.slow
def test_restormer_lowers_to_xnnpack_and_matches_eager(tmp_path) -> None:
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2]).eval()
    x = torch.rand(1, 3, 16, 16)
    program = lower_to_executorch(model, (x,))
    assert program.delegated_calls >= 1
    out = run_program(program.buffer, (x,))[0]
    with torch.no_grad():
        assert (out - model(x)).abs().max().item() <= 1e-4
    program.save(str(tmp_path / "restormer.pte"))
    assert (tmp_path / "restormer.pte").stat().st_size == len(program.buffer)
