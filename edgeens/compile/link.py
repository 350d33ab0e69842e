"""Link already-lowered programs into one whole-network program, without lowering anything again.

Lowering a paper-size hybrid takes minutes to an hour (torch.fx passes over the unrolled scans), while its eight
stages already exist as stage programs (edgeens.compile.stages). A linked program is one `.pte` whose single
execution plan runs the stage programs' instructions and delegates one after the other, joined by small glue
programs (patch embedding, down/upsampling, skip concatenation, output conv): the same delegate blobs that the
latency table timed, in one program that the runtime loads and runs end to end.

Each linked part keeps its own planned memory (a memory arena of its own), so a tensor one part hands to a later
part (a skip connection) can never be overwritten by another part. That costs memory, not time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from edgeens.compile.artifact import CompileError
from edgeens.models.restormer import Restormer
from edgeens.models.space import SearchSpace

GLUE_FOLDER = "glue"


@dataclass(frozen=True)
class LinkPart:
    """One program to run, the named values feeding its inputs (in order), and the name of its one output."""

    program: bytes
    inputs: tuple[str, ...]
    output: str


def link_programs(parts: Sequence[LinkPart], graph_input: str, graph_output: str) -> bytes:
    """One program running `parts` in order: each part's inputs are the outputs of earlier parts (or the graph
    input, which the first part that reads it binds); the program returns `graph_output`."""
    from executorch.exir._serialize._named_data_store import NamedDataStoreOutput
    from executorch.exir._serialize._program import PTEFile, deserialize_pte_binary, serialize_pte_binary
    from executorch.exir.schema import Buffer, Chain, DelegateCall, KernelCall, SubsegmentOffsets

    merged_program = None
    values: list = []
    operators: list = []
    delegates: list = []
    instructions: list = []
    arena_sizes: list[int] = [0]  # memory id 0 is never planned (ExecuTorch's convention)
    constants: list = [Buffer(storage=b"")]  # constant buffer 0 is the "not a constant" placeholder
    delegate_data: list = []
    named = NamedDataStoreOutput(buffers=[], pte_data={}, external_data={})
    bound: dict[str, int] = {}
    for number, part in enumerate(parts):
        pte = deserialize_pte_binary(part.program)
        program = pte.program
        if len(program.execution_plan) != 1 or pte.mutable_data:
            raise CompileError(f"link part {number} has {len(program.execution_plan)} methods or mutable state")
        plan = program.execution_plan[0]
        if len(plan.inputs) != len(part.inputs) or len(plan.outputs) != 1:
            raise CompileError(
                f"link part {number} takes {len(plan.inputs)} inputs and returns {len(plan.outputs)} values; "
                f"the link names {len(part.inputs)} inputs and 1 output"
            )
        merged_program = merged_program or program
        offset = len(values)
        remap: dict[int, int] = {}
        for position, (local, name) in enumerate(zip(plan.inputs, part.inputs, strict=True)):
            if name in bound:
                remap[local] = bound[name]
            elif name == graph_input:
                bound[name] = local + offset
                _check_input_kept(plan, local, number)
            else:
                raise CompileError(f"link part {number} reads {name!r} (input {position}) before any part makes it")

        def index(local: int, remap: dict[int, int] = remap, offset: int = offset) -> int:
            return remap.get(local, local + offset)

        arena_base = len(arena_sizes) - 1
        arena_sizes += plan.non_const_buffer_sizes[1:]
        constant_base = len(constants) - 1
        constants += program.constant_buffer[1:]
        for value in plan.values:
            values.append(_relocated(copy.copy(value), index, arena_base, constant_base))
        operator_index = []
        for operator in plan.operators:
            key = (operator.name, operator.overload)
            found = next((i for i, o in enumerate(operators) if (o.name, o.overload) == key), None)
            if found is None:
                operators.append(operator)
                found = len(operators) - 1
            operator_index.append(found)
        delegate_base = len(delegates)
        for delegate in plan.delegates:
            delegate = copy.copy(delegate)
            reference = copy.copy(delegate.processed)
            if reference.location != 0:  # deserialisation moves segment-held blobs inline
                raise CompileError(f"link part {number}: delegate data is not inline after loading")
            delegate_data.append(program.backend_delegate_data[reference.index])
            reference.index = len(delegate_data) - 1
            delegate.processed = reference
            delegates.append(delegate)
        for chain in plan.chains:
            for instruction in chain.instructions:
                args = instruction.instr_args
                if isinstance(args, KernelCall):
                    args = KernelCall(op_index=operator_index[args.op_index], args=[index(a) for a in args.args])
                elif isinstance(args, DelegateCall):
                    args = DelegateCall(
                        delegate_index=delegate_base + args.delegate_index, args=[index(a) for a in args.args]
                    )
                else:
                    raise CompileError(
                        f"link part {number} has a {type(args).__name__} instruction; only kernel "
                        "and delegate calls can be linked"
                    )
                instructions.append(type(instruction)(instr_args=args))
        if pte.named_data is not None:
            for key, entry in pte.named_data.pte_data.items():
                if key not in named.pte_data:  # XNNPACK names weights by their hash: same key, same bytes
                    named.buffers.append(pte.named_data.buffers[entry.buffer_index])
                    named.pte_data[key] = replace(entry, buffer_index=len(named.buffers) - 1)
        bound[part.output] = index(plan.outputs[0])
    if merged_program is None or graph_output not in bound:
        raise CompileError(f"no link part makes the graph output {graph_output!r}")
    first_plan = deserialize_pte_binary(parts[0].program).program.execution_plan[0]
    last_plan = deserialize_pte_binary(parts[-1].program).program.execution_plan[0]
    plan = replace(
        first_plan,
        container_meta_type=replace(
            first_plan.container_meta_type, encoded_out_str=last_plan.container_meta_type.encoded_out_str
        ),
        values=values,
        inputs=[bound[graph_input]],
        outputs=[bound[graph_output]],
        chains=[Chain(inputs=[], outputs=[], instructions=instructions, stacktrace=None)],
        operators=operators,
        delegates=delegates,
        non_const_buffer_sizes=arena_sizes,
        non_const_buffer_device=None,
    )
    program = replace(
        merged_program,
        execution_plan=[plan],
        constant_buffer=constants,
        backend_delegate_data=delegate_data,
        segments=[],
        constant_segment=SubsegmentOffsets(segment_index=0, offsets=[]),
        mutable_data_segments=None,
        named_data=None,
    )
    pte = PTEFile(program=program, mutable_data=None, named_data=named)
    return bytes(serialize_pte_binary(pte, extract_delegate_segments=True))


def _relocated(value, index, arena_base: int, constant_base: int):
    """`value` with its references moved into the linked plan: value indices, memory arena, constant buffer."""
    from executorch.exir.schema import IntList, OptionalTensorList, Tensor, TensorList

    val = value.val
    if isinstance(val, Tensor):
        val = copy.copy(val)
        if val.data_buffer_idx > 0:
            val.data_buffer_idx += constant_base
        if val.allocation_info is not None:
            val.allocation_info = replace(val.allocation_info, memory_id=val.allocation_info.memory_id + arena_base)
    elif isinstance(val, (TensorList, IntList)):
        val = type(val)(items=[index(i) for i in val.items])
    elif isinstance(val, OptionalTensorList):
        val = OptionalTensorList(items=[i if i < 0 else index(i) for i in val.items])
    value.val = val
    return value


def _check_input_kept(plan, local: int, number: int) -> None:
    """The graph input is read again by a later part: no other tensor of this part may share its memory."""
    from executorch.exir.schema import Tensor

    tensor = plan.values[local].val
    where = tensor.allocation_info
    if where is None:
        return
    start = where.memory_offset_low + (where.memory_offset_high << 32)
    end = start + _nbytes(tensor)
    for other_index, other in enumerate(plan.values):
        info = getattr(other.val, "allocation_info", None)
        if other_index == local or not isinstance(other.val, Tensor) or info is None:
            continue
        other_start = info.memory_offset_low + (info.memory_offset_high << 32)
        if info.memory_id == where.memory_id and other_start < end and start < other_start + _nbytes(other.val):
            raise CompileError(f"link part {number} reuses the memory of the graph input, which a later part reads")


def _nbytes(tensor) -> int:
    count = 1
    for size in tensor.sizes:
        count *= size
    return count * torch.empty((), dtype=_DTYPES[int(tensor.scalar_type)]).element_size()


_DTYPES = {6: torch.float32, 5: torch.float16, 15: torch.bfloat16, 3: torch.int32, 4: torch.int64, 11: torch.bool}


class Glue(nn.Module):
    """The part of a Restormer-shaped network between two stages (everything a hybrid shares with its teacher)."""

    def __init__(self, teacher: Restormer, name: str) -> None:
        super().__init__()
        if name not in GLUE:
            raise CompileError(f"no glue part {name!r}; choose one of: {', '.join(GLUE)}")
        self.name = name
        modules = {"up4_3": ("up4_3", "reduce_chan_level3"), "up3_2": ("up3_2", "reduce_chan_level2")}
        for module in modules.get(name, (name,)):
            self.add_module(module, getattr(teacher, module))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.name in ("patch_embed", "down1_2", "down2_3", "down3_4"):
            return getattr(self, self.name)(x)
        if self.name == "up4_3":
            return self.reduce_chan_level3(torch.cat([self.up4_3(x), skip], 1))
        if self.name == "up3_2":
            return self.reduce_chan_level2(torch.cat([self.up3_2(x), skip], 1))
        if self.name == "up2_1":
            return torch.cat([self.up2_1(x), skip], 1)
        return self.output(x) + skip  # output conv and the global residual


# Glue parts in data-flow order, with the values they read (a stage reads the value before it and makes its own).
GLUE = {
    "patch_embed": ("input",),
    "down1_2": ("encoder1",),
    "down2_3": ("encoder2",),
    "down3_4": ("encoder3",),
    "up4_3": ("latent", "encoder3"),
    "up3_2": ("decoder3", "encoder2"),
    "up2_1": ("decoder2", "encoder1"),
    "output": ("refinement", "input"),
}
_GLUE_AFTER = {
    "input": "patch_embed",
    "encoder1": "down1_2",
    "encoder2": "down2_3",
    "encoder3": "down3_4",
    "latent": "up4_3",
    "decoder3": "up3_2",
    "decoder2": "up2_1",
    "refinement": "output",
}


def glue_programs(teacher: Restormer, height: int, width: int, folder: str | Path) -> dict[str, bytes]:
    """The lowered glue programs of `teacher` at this input size, cached in `folder`/glue (seconds to build)."""
    from edgeens.compile.executorch import lower_to_executorch

    if teacher.config.dual_pixel_task:
        raise CompileError("linking supports single-image Restormers; lower dual-pixel hybrids whole")
    out = Path(folder) / GLUE_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    shapes = _value_shapes(teacher, height, width)
    programs = {}
    for name, reads in GLUE.items():
        path = out / f"{name}.pte"
        if not path.is_file():
            generator = torch.Generator().manual_seed(0)
            example = tuple(torch.randn(shapes[r], generator=generator) for r in reads)
            lower_to_executorch(Glue(teacher, name).eval(), example).save(path)
        programs[name] = path.read_bytes()
    return programs


def _value_shapes(teacher: Restormer, height: int, width: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"input": (1, teacher.config.inp_channels, height, width)}
    for stage in SearchSpace(teacher.config).stages:
        scale = 2 ** (stage.level - 1)
        shapes[stage.name] = (1, stage.width, height // scale, width // scale)
    return shapes


def link_architecture(teacher: Restormer, architecture: Sequence[str], stages_folder: str | Path) -> bytes:
    """The whole hybrid `architecture` (one choice per stage) as one program, linked from the stage programs in
    `stages_folder` (built by edgeens.compile.stages for this teacher) and the glue programs."""
    from edgeens.compile.stages import read_manifest

    folder = Path(stages_folder)
    manifest = read_manifest(folder)  # an older version's manifest upgraded, as the stage builder reads it
    if manifest is None:
        raise CompileError(
            f"{folder} holds no stages.json; build the stage programs first (edgeens profile --device host ...)"
        )
    from edgeens.models.checkpoint import weights_hash

    if manifest.get("teacher_sha256") != weights_hash(teacher):
        raise CompileError(f"the stage programs in {folder} were built from another teacher; link with that teacher")
    stages = SearchSpace(teacher.config).stages
    if len(architecture) != len(stages):
        raise CompileError(f"an architecture has {len(stages)} choices, got {len(architecture)}")
    glue = glue_programs(teacher, manifest["height"], manifest["width"], folder)
    parts = [LinkPart(glue["patch_embed"], GLUE["patch_embed"], "patch_embed")]
    previous = "patch_embed"
    for stage, choice in zip(stages, architecture, strict=True):
        entry = manifest["programs"].get(f"{stage.name}--{choice}")
        if entry is None or not (folder / entry.get("file", "")).is_file():
            raise CompileError(f"{folder} has no stage program {stage.name}--{choice}; build it first")
        parts.append(LinkPart((folder / entry["file"]).read_bytes(), (previous,), stage.name))
        previous = _GLUE_AFTER.get(stage.name, stage.name)  # decoder1 feeds the refinement directly
        if previous != stage.name:
            parts.append(LinkPart(glue[previous], GLUE[previous], previous))
    return link_programs(parts, "input", "output")
