from __future__ import annotations

import json
import shutil

import pytest
import torch

from edgeens.compile.artifact import CompileError
from edgeens.compile.executorch import run_program
from edgeens.compile.link import GLUE, GLUE_FOLDER, LinkPart, link_architecture, link_programs
from edgeens.models import Restormer
from edgeens.models.space import SearchSpace
from tests.conftest import SMALL_TEACHER

pytestmark = pytest.mark.slow  # a small teacher's stage programs (conftest) are built once per session


def image() -> torch.Tensor:
    return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_linked_teacher_computes_the_teacher(small_stage_programs) -> None:
    teacher, folder, _, _ = small_stage_programs
    program = link_architecture(teacher, ("R",) * 8, folder)
    with torch.no_grad():
        expected = teacher(image())
    assert (run_program(program, (image(),))[0] - expected).abs().max().item() < 1e-4
    assert sorted(p.stem for p in (folder / GLUE_FOLDER).glob("*.pte")) == sorted(GLUE)


def test_linked_hybrid_runs_exactly_the_stage_programs_in_sequence(small_stage_programs) -> None:
    """The linked program equals running glue and stage programs one by one, bit for bit: the same delegates,
    the same kernels (the scans' flips), the skips wired to the right outputs."""
    teacher, folder, manifest, _ = small_stage_programs
    stages = SearchSpace(teacher.config).stages
    architecture = ("M1", "G1", "R", "M2", "G1", "R", "G1", "R")  # MambaIR (scans, flips), gated convs and R
    linked = run_program(link_architecture(teacher, architecture, folder), (image(),))[0]

    values = {"input": image()}

    def run(name: str, file: str, reads: tuple[str, ...]) -> str:
        program = (folder / file).read_bytes()
        values[name] = run_program(program, tuple(values[r] for r in reads))[0]
        return name

    previous = run("patch_embed", f"{GLUE_FOLDER}/patch_embed.pte", GLUE["patch_embed"])
    after = {reads[0]: glue for glue, reads in GLUE.items() if glue != "patch_embed"}
    for stage, choice in zip(stages, architecture, strict=True):
        previous = run(stage.name, manifest["programs"][f"{stage.name}--{choice}"]["file"], (previous,))
        if stage.name in after:
            previous = run(after[stage.name], f"{GLUE_FOLDER}/{after[stage.name]}.pte", GLUE[after[stage.name]])
    assert previous == "output" and torch.equal(linked, values["output"])


def test_linking_refuses_what_does_not_fit(small_stage_programs, tmp_path) -> None:
    teacher, folder, manifest, _ = small_stage_programs
    with pytest.raises(CompileError, match="8 choices"):
        link_architecture(teacher, ("R",) * 7, folder)
    torch.manual_seed(1)
    other = Restormer(**SMALL_TEACHER).eval()
    with pytest.raises(CompileError, match="another teacher"):
        link_architecture(other, ("R",) * 8, folder)
    with pytest.raises(CompileError, match="holds no stages.json"):
        link_architecture(teacher, ("R",) * 8, tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "stages.json").write_text("{not json")
    with pytest.raises(CompileError, match="unreadable or not a stage-programs manifest"):
        link_architecture(teacher, ("R",) * 8, broken)
    partial = tmp_path / "partial"
    shutil.copytree(folder / GLUE_FOLDER, partial / GLUE_FOLDER)
    programs = {k: v for k, v in manifest["programs"].items() if k != "latent--R"}
    (partial / "stages.json").write_text(json.dumps({**manifest, "programs": programs}))
    for entry in programs.values():
        shutil.copy(folder / entry["file"], partial / entry["file"])
    with pytest.raises(CompileError, match="no stage program latent--R"):
        link_architecture(teacher, ("R",) * 8, partial)

    glue = (folder / GLUE_FOLDER / "patch_embed.pte").read_bytes()
    with pytest.raises(CompileError, match="reads 'nowhere'"):
        link_programs([LinkPart(glue, ("nowhere",), "x")], "input", "x")
    with pytest.raises(CompileError, match="takes 1 inputs"):
        link_programs([LinkPart(glue, ("input", "input"), "x")], "input", "x")

    # A part whose planned memory reuses the graph input's bytes would corrupt the input a later part reads.
    from dataclasses import replace

    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(glue)
    plan = pte.program.execution_plan[0]
    output = plan.values[plan.outputs[0]].val
    output.allocation_info = replace(output.allocation_info, **vars(plan.values[plan.inputs[0]].val.allocation_info))
    clobbering = bytes(serialize_pte_binary(pte, extract_delegate_segments=True))
    with pytest.raises(CompileError, match="reuses the memory of the graph input"):
        link_programs([LinkPart(clobbering, ("input",), "x")], "input", "x")
