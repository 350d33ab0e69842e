"""Post-training quantization, one name per precision: `fp32` (none), `w8a8` and `w8a16` (8-bit weights, 8- or
16-bit activations), each lowered where a runtime runs it.

- ExecuTorch (XNNPACK): w8a8 through PT2E and XNNPACK's quantizer. XNNPACK has no 16-bit activations: w8a16 is
  refused there with where it does run.
- ONNX Runtime: w8a8 and w8a16 by static quantization of the float export (QDQ, per-channel weights).
- AI Hub: the float upload plus a quantize job on Hub's side (edgeens.compile.aihub).

Calibration images are degraded crops of the task's training split (`TaskData.calibration_inputs`), never the test
photos: a precision's test score must not have seen them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeens.compile.artifact import CompileError

PRECISIONS = ("fp32", "w8a8", "w8a16")
_ALIASES = {"none": "fp32", "float": "fp32", "int8": "w8a8"}
# What is quantized, by XNNPACK's quantizer and ONNX Runtime's alike: the convolutions and linears alone ("conv",
# the default: the elementwise ops between them stay float), or every pattern the quantizer knows ("all": adds,
# muls, concatenations and pooling too). "all" quantizes the add inside each layer norm's sqrt(var + eps): a small
# variance rounds to zero there and the normalisation divides by zero (found as NaN gradients in QAT).
QUANTIZE_SCOPES = ("conv", "all")


def parse_precision(text: str) -> str:
    """`--quantize` to a precision name: none (= fp32), w8a8 or w8a16."""
    name = _ALIASES.get(text.strip().lower(), text.strip().lower())
    if name not in PRECISIONS:
        raise CompileError(f"unknown precision {text!r}; choose one of: none, w8a8, w8a16")
    return name


def check_precision_for(precision: str, runtime: str) -> None:
    """Refuse a precision a runtime cannot run, naming where it does run."""
    if precision == "w8a16" and runtime == "executorch":
        raise CompileError(
            "XNNPACK (the ExecuTorch CPU backend) has no 16-bit activations, so it cannot run w8a16: use "
            "--quantize w8a8 for ExecuTorch, or w8a16 with --target onnx (ONNX Runtime) or --target aihub "
            "--compute-unit npu (the Snapdragon NPU)"
        )


@dataclass(frozen=True, eq=False)  # eq=False: its calibration tensors have no single truth value to compare by
class Quantization:
    """A precision with what it needs: the operators quantized (`scope`) and the calibration images (degraded
    crops of the task's training split, at the program's input size). `fp32` needs neither."""

    precision: str = "fp32"
    scope: str = "conv"
    calibration: tuple[Tensor, ...] = ()

    @property
    def quantized(self) -> bool:
        return self.precision != "fp32"

    @property
    def suffix(self) -> str:
        """What a quantized program's name or key carries (`-w8a8`), nothing for float."""
        return f"-{self.precision}" if self.quantized else ""

    def check_runtime(self, runtime: str) -> None:
        """Refuse an unknown precision or scope, or a precision `runtime` cannot run."""
        if parse_precision(self.precision) != self.precision:
            raise CompileError(f"precision {self.precision!r} is spelled {parse_precision(self.precision)!r} here")
        if self.scope not in QUANTIZE_SCOPES:
            known = ", ".join(QUANTIZE_SCOPES)
            raise CompileError(f"unknown quantization scope {self.scope!r}; choose one of: {known}")
        check_precision_for(self.precision, runtime)

    def check(self, runtime: str) -> None:
        """`check_runtime`, and refuse quantization without calibration images."""
        self.check_runtime(runtime)
        if self.quantized and not self.calibration:
            raise CompileError("quantization needs at least one calibration image (the task's training crops)")


def xnnpack_quantizer(
    scope: str = "conv", modules: Sequence[str] = (), qat: bool = False, keep_float: Sequence[str] = ()
) -> Any:
    """XNNPACK's PT2E quantizer for w8a8 (per-channel symmetric int8 weights, int8 activations): `scope` says which
    operators (QUANTIZE_SCOPES), `modules` limits it to these submodules (qualified names, e.g. `encoder_level2`:
    the per-stage sensitivity table quantizes one stage at a time), `keep_float` leaves these submodules in float
    (mixed precision: the stages that carry the loss), `qat` gives its fake-quantizing form."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    if scope not in QUANTIZE_SCOPES:
        raise CompileError(f"unknown quantization scope {scope!r}; choose one of: {', '.join(QUANTIZE_SCOPES)}")
    from torchao.quantization.pt2e.quantizer import get_module_name_filter

    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
    quantizer = XNNPACKQuantizer()
    inside = [get_module_name_filter(name) for name in modules]
    outside = [get_module_name_filter(name) for name in keep_float]
    if inside or outside:  # a filter, not set_module_name: that quantizes every pattern inside, whatever the scope
        # an operator's weights (get_attr nodes) carry no module stack: they go with the operator
        quantizer.set_filter_function(
            lambda node: (
                node.op != "call_function"
                or ((not inside or any(f(node) for f in inside)) and not any(f(node) for f in outside))
            )
        )
    if scope == "conv":
        quantizer.set_operator_type(torch.ops.aten.conv2d.default, config)
        quantizer.set_operator_type(torch.ops.aten.linear.default, config)
    else:
        quantizer.set_global(config)
    return quantizer


def quantize_for_xnnpack(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    calibration: Iterable[Tensor],
    scope: str = "conv",
    modules: Sequence[str] = (),
    keep_float: Sequence[str] = (),
) -> nn.Module:
    """w8a8 by PT2E (`xnnpack_quantizer`), activation ranges observed on `calibration`."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = xnnpack_quantizer(scope, modules, keep_float=keep_float)
    with torch.no_grad():
        graph = torch.export.export(model.eval(), example_inputs).module()
        prepared = prepare_pt2e(graph, quantizer)
        seen = 0
        for batch in calibration:
            prepared(batch)
            seen += 1
        if seen == 0:
            raise CompileError("quantization needs at least one calibration image (the task's training crops)")
        return convert_pt2e(prepared)


def quantize_onnx(
    float_path: Path, out_path: Path, calibration: Sequence[Tensor], precision: str, scope: str = "conv"
) -> Path:
    """Static QDQ quantization of a float ONNX export with ONNX Runtime: per-channel int8 weights, int8 (w8a8) or
    int16 (w8a16) activations calibrated by min/max on `calibration`; `scope` as XNNPACK's (convolutions and
    matrix products only, or every operator ONNX Runtime quantizes)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if precision not in ("w8a8", "w8a16"):
        raise CompileError(f"ONNX static quantization makes w8a8 or w8a16, not {precision}")
    if not calibration:
        raise CompileError("quantization needs at least one calibration image (the task's training crops)")
    if scope not in QUANTIZE_SCOPES:
        raise CompileError(f"unknown quantization scope {scope!r}; choose one of: {', '.join(QUANTIZE_SCOPES)}")
    import onnx

    input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: b.numpy()} for b in calibration])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    activations = QuantType.QInt8 if precision == "w8a8" else QuantType.QInt16
    # The quantizer logs a warning per bias the exporter computed rather than stored, at the root logger: the
    # program is checked against eager afterwards, so its lines only bury the step's own.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(float_path),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=activations,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"] if scope == "conv" else None,
            # 16-bit activations need ONNX Runtime's own Q/DQ below opset 21; symmetric int8 activations are what
            # XNNPACK and the NPU run fastest, so both runtimes see the same kind of int8 model.
            extra_options={"ActivationSymmetric": True, "UseQDQContribOps": precision == "w8a16"},
        )
    finally:
        root.setLevel(level)
    return out_path
