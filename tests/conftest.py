"""Shared paths: the official fixtures and key listings live in ../shared beside the checkout (never copied here)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("EDGEENS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
FIXTURES = SHARED / "fixtures" / "official"
KEYS = SHARED / "spec" / "keys"

torch.set_num_threads(1)  # two cores: oversubscribed threads slow every test down


@pytest.fixture(scope="session")
def manifest() -> dict:
    path = FIXTURES / "MANIFEST.json"
    assert path.is_file(), f"official fixtures not found at {FIXTURES}; set EDGEENS_SHARED to the shared/ folder"
    return json.loads(path.read_text())


def key_listing(filename: str, section: str | None = None) -> tuple[list[tuple[str, tuple[int, ...]]], int]:
    """Keys with shapes, in order, and the total parameter count, from a file in spec/keys/.

    `section` picks the block whose '# =====' header contains that text (files with several listings)."""
    lines = (KEYS / filename).read_text().splitlines()
    if section is not None:
        start = next(i for i, line in enumerate(lines) if line.startswith("# =====") and section in line)
        lines = lines[start + 1 :]
    keys, total = [], None
    for line in lines:
        if line.startswith("# total_params"):
            total = int(line.split()[-1])
            break
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        keys.append((name, tuple(int(s) for s in re.findall(r"\d+", shape))))
    assert total is not None, f"no total_params line in {filename} ({section})"
    return keys, total


def state_listing(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# A teacher of 1-2 blocks per stage: the stage-program, search and fine-tuning tests share it.
SMALL_TEACHER = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}
# Its stage programs in the space M,G that the session builds: every R and gated-conv one (they lower in seconds),
# and MambaIR at the full-resolution stage and the latent (unrolled scans and the flips around them take longer).
SMALL_PROGRAMS = ("fixed", "encoder1--M1", "latent--M2")


def profile_request(teacher, programs: Path, size: int = 8, space=None, **fields):
    """A ProfileRequest for `teacher`'s programs in `programs` at `size`, its table saved beside them; `fields`
    set any other option (device, policy, validate_programs, quantization, hub_poll, ...)."""
    from edgeens.models.space import SearchSpace
    from edgeens.profile.request import ProfileRequest

    space = space or SearchSpace(teacher.config)
    name = fields.pop("space_name", "test")
    return ProfileRequest(
        teacher, space, name, (size, size), Path(programs), Path(programs), ("--preset", "test"), **fields
    )


@pytest.fixture(scope="session")
def small_stage_programs(tmp_path_factory, worker_id):
    """Stage programs of a teacher of 1-2 blocks per stage (SMALL_TEACHER) in the space M,G at 8x8, the smallest
    size the U-Net takes, built once per test session: every R and G program and SMALL_PROGRAMS' MambaIR ones.
    Returns (teacher, folder, manifest, checkpoint); the CLI reuses the folder given `--teacher checkpoint`.
    Under xdist the first worker builds them in the session's shared folder while the other waits on a lock."""
    import fcntl

    from safetensors.torch import save_file

    from edgeens.compile.stages import StageProgramsRequest, build_stage_programs, stage_programs
    from edgeens.models import Restormer
    from edgeens.models.space import SearchSpace, parse_families

    torch.manual_seed(0)
    teacher = Restormer(**SMALL_TEACHER).eval()
    # xdist gives each worker <session>/popen-gwN: the session folder is shared, and fresh every session.
    shared = worker_id != "master"
    root = tmp_path_factory.getbasetemp().parent / "small-stages-8" if shared else tmp_path_factory.mktemp("stages")
    root.mkdir(exist_ok=True)
    checkpoint = root / "small.safetensors"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not checkpoint.is_file():
            save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(checkpoint))
        # Resumes: programs already in stages.json are kept, so the second worker lowers nothing.
        space = SearchSpace(teacher.config, parse_families("M,G"))
        only = [p.key for p in stage_programs(space) if p.key in SMALL_PROGRAMS or p.key.split("--")[-1][0] in "RG"]
        request = StageProgramsRequest(teacher, space, (8, 8), root / "programs", jobs=2)
        manifest = build_stage_programs(request, only, show_progress=False)
    return teacher, root / "programs", manifest, checkpoint


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A teacher of 1-2 blocks per stage and a pool of all its 8 surrogates (a few distillation steps: the search
    only needs them to exist)."""
    from safetensors.torch import save_file

    from edgeens.models.restormer import Restormer
    from edgeens.train.distill import DistillRecipe, capture_features, distill_pool

    folder = tmp_path_factory.mktemp("small-run")
    torch.manual_seed(0)
    teacher = Restormer(**SMALL_TEACHER).eval()
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(folder / "teacher.safetensors"))
    g = torch.Generator().manual_seed(1)
    capture_features(
        teacher, torch.rand(8, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g), folder / "features"
    )
    distill_pool(teacher, folder / "features", folder / "pool", DistillRecipe(steps=2), show_progress=False)
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, the longest (`slow(seconds=...)`) at the head, so `make test`'s xdist workers (`--dist
    worksteal`) start the long ones early and finish together: the whole run's test, started last, ran alone for
    minutes at the end."""

    def weight(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return -slow.kwargs.get("seconds", 1.0) if slow else 0.0

    items.sort(key=weight)  # stable: file order within each weight
