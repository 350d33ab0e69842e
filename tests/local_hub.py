"""A Qualcomm AI Hub that runs on this machine: the `qai_hub` 0.56 client's surface (spec/deployment.md 1.4-1.10),
accepting what the service accepts, refusing what it refuses, and measuring its profiles by running the model here.

- Compile jobs take a `torch.export.ExportedProgram` or an ONNX file, `input_specs` naming each input with its
  shape (and dtype), and options made of the documented flags; anything else is refused at submission with the
  client's UserError. An input spec whose shape differs from the program's makes the job fail, as the service's
  compile does. The compiled target model is the program itself (run with torch) or an onnxruntime session.
- Profile (inference) jobs take a compiled target model only. Their profile is measured here: the model runs
  `--max_profiler_iterations` times (at most `max_iterations`) for `all_inference_times`, and `execution_detail`
  holds each layer's minimum time (every call of the exported graph, timed node by node; every node of ONNX
  Runtime's own profile).
- Placement: with `--compute_unit npu` or `gpu`, layers whose op is in CPU_FALLBACK (ops this test Hub pretends the
  accelerator lacks: a fixed rule of this file, not Qualcomm's) run "on the CPU", the others on the unit asked for.
- Failures the service has: `fail_jobs` (a job whose name contains the key fails with the reason), `slow_jobs`
  (never finish), `rate_limit` (submissions beyond it are refused), `offline` (every call fails as the client does
  without a network), `reject_token`.
"""

from __future__ import annotations

import enum
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


class Error(Exception):
    pass


class UserError(Error):
    pass


class InternalError(Error):
    pass


@dataclass
class Device:
    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)


class QuantizeDtype(enum.Enum):
    INT8 = 1
    INT16 = 2
    INT4 = 3


class State(enum.Enum):
    CREATED = 0
    OPTIMIZING_MODEL = 1
    QUANTIZING_MODEL = 2
    PROVISIONING_DEVICE = 3
    MEASURING_PERFORMANCE = 4
    SUCCESS = 8
    FAILED = 9


@dataclass
class JobStatus:
    code: State
    message: str | None = None

    @property
    def success(self) -> bool:
        return self.code == State.SUCCESS

    @property
    def failure(self) -> bool:
        return self.code == State.FAILED

    @property
    def finished(self) -> bool:
        return self.success or self.failure


_ELITE = ["os:android", "framework:tflite", "framework:qnn", "framework:onnx", "hexagon:v79"]
# Snapdragon 8 Elite devices and neighbours, as listed in spec/deployment.md 1.4.
DEVICES = [
    Device("Snapdragon 8 Elite QRD", "15", ["chipset:qualcomm-snapdragon-8-elite", *_ELITE]),
    Device("Samsung Galaxy S25", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy", *_ELITE]),
    Device("Samsung Galaxy S25 Ultra", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy", "os:android"]),
    Device("Samsung Galaxy S25+", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy", "os:android"]),
    Device("Samsung Galaxy S25 (Family)", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy"]),
    Device("Snapdragon 8 Elite Gen 5 QRD", "16", ["chipset:qualcomm-snapdragon-8-elite-gen5", "os:android"]),
    Device("Samsung Galaxy S24", "14", ["chipset:qualcomm-snapdragon-8gen3", "os:android"]),
]

RUNTIMES = ("tflite", "qnn_dlc", "qnn_context_binary", "onnx", "precompiled_qnn_onnx")
COMPUTE_UNITS = ("all", "npu", "gpu", "cpu")
DTYPES = ("float32", "int8", "int16", "int32", "int64", "uint8", "uint16")
# Flags each job kind takes (spec/deployment.md 1.7, 1.8) and whether each takes a value.
COMPILE_FLAGS = {
    "--target_runtime": True,
    "--compute_unit": True,
    "--qairt_version": True,
    "--output_names": True,
    "--quantize_full_type": True,
    "--quantize_io": False,
    "--truncate_64bit_io": False,
    "--truncate_64bit_tensors": False,
}
PROFILE_FLAGS = {"--max_profiler_iterations": True, "--compute_unit": True, "--qairt_version": True}
# The test Hub's placement rule: ops it reports on the CPU when an accelerator was asked for.
CPU_FALLBACK = {"cumsum", "flip", "gather", "scatter", "index", "index_put", "CumSum", "Gather", "ScatterND"}


def parse_options(options: str, allowed: dict[str, bool]) -> dict[str, str]:
    """The service's option string as {flag: value}; an unknown flag, a missing value or a bad value is refused."""
    words, parsed = options.split(), {}
    index = 0
    while index < len(words):
        flag = words[index]
        if flag not in allowed:
            raise UserError(f"Unknown option {flag}. Valid options: {', '.join(sorted(allowed))}")
        if allowed[flag]:
            if index + 1 >= len(words) or words[index + 1].startswith("--"):
                raise UserError(f"Option {flag} needs a value")
            parsed[flag] = words[index + 1]
            index += 2
        else:
            parsed[flag] = ""
            index += 1
    if "--target_runtime" in parsed and parsed["--target_runtime"] not in RUNTIMES:
        raise UserError(f"Invalid --target_runtime {parsed['--target_runtime']}; choose from {', '.join(RUNTIMES)}")
    for unit in parsed.get("--compute_unit", "all").split(","):
        if unit not in COMPUTE_UNITS:
            raise UserError(f"Invalid --compute_unit {unit}; choose from {', '.join(COMPUTE_UNITS)}")
    if "--max_profiler_iterations" in parsed and not parsed["--max_profiler_iterations"].isdigit():
        raise UserError("--max_profiler_iterations takes a positive integer")
    return parsed


@dataclass
class TargetModel:
    """What a compile job produced: a runnable program for one input shape."""

    model_id: str
    source: Any  # an ExportedProgram or an ONNX path
    shape: tuple[int, ...]
    runtime: str
    compute_unit: str


@dataclass
class QuantizedModel:
    """What a quantize job produced: a QDQ ONNX model (made here by ONNX Runtime's static quantizer, as the
    service makes one by its own), which a compile job takes as its source."""

    model_id: str
    path: Path


class Job:
    def __init__(
        self, hub: LocalHub, job_id: str, kind: str, model: Any, device: Device, options: dict, name: str, spec=None
    ):
        self.hub, self.job_id, self.kind, self.model, self.device, self.options = (
            hub,
            job_id,
            kind,
            model,
            device,
            options,
        )
        self.name, self.input_spec = name, spec
        self.url = f"https://workbench.aihub.qualcomm.com/jobs/{job_id}/"
        self._state = State.CREATED
        self._fail_with = next((reason for key, reason in hub.fail_jobs.items() if key in name), None)
        running = {"compile": State.OPTIMIZING_MODEL, "quantize": State.QUANTIZING_MODEL}.get(
            kind, State.MEASURING_PERFORMANCE
        )
        if any(key in name for key in hub.slow_jobs):
            self._states = iter([running] * 1_000_000)
        else:
            self._states = iter([running] * max(0, hub.steps_to_finish - 1) + [State.SUCCESS])
        self._profile: dict | None = None
        self._target: TargetModel | None = None

    def get_status(self) -> JobStatus:
        self.hub.call()
        self.hub.status_calls += 1
        self._state = next(self._states, self._state)
        if self._state == State.SUCCESS and self._fail_with is None:
            self._fail_with = self._run()  # the job's work, once: a compile that fails says why
        if self._state == State.SUCCESS and self._fail_with:
            self._state = State.FAILED
        if self._state == State.FAILED:
            return JobStatus(State.FAILED, self._fail_with)
        return JobStatus(self._state)

    def _run(self) -> str | None:
        if self.kind == "quantize":
            if self._target is None:
                self._target = self.hub.quantize(self)
            return None
        if self.kind == "compile":
            if self._target is None:
                model, (shape, _) = self.model, self.input_spec
                if isinstance(model, QuantizedModel):
                    model = model.path
                actual = _input_shape(model)
                if actual is not None and tuple(actual) != tuple(shape):
                    return f"Compilation failed: input spec shape {tuple(shape)} does not match the model's {actual}"
                unit = self.options.get("--compute_unit", "all")
                self._target = TargetModel(
                    f"m{self.job_id[1:]}", model, tuple(shape), self.options["--target_runtime"], unit
                )
            return None
        if self._profile is None:
            self._profile = self.hub.measure(self.model, self.options)
        return None

    def _finished(self) -> None:
        if self._state != State.SUCCESS:
            raise UserError("Job has not finished successfully")

    def get_target_model(self) -> TargetModel:
        self.hub.call()
        self._finished()
        return self._target

    def download_target_model(self, filename: str) -> str:
        self.hub.call()
        self._finished()
        Path(filename).write_bytes(f"{self._target.runtime} model compiled here for {self.device.name}".encode())
        return filename

    def download_profile(self) -> dict:
        self.hub.call()
        self._finished()
        return json.loads(json.dumps(self._profile))  # as the client returns it: a plain dict


def _input_shape(model: Any) -> tuple[int, ...] | None:
    if isinstance(model, torch.export.ExportedProgram):
        inputs = [s for s in model.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        node = next(n for n in model.graph.nodes if n.op == "placeholder" and n.name == inputs[0].arg.name)
        return tuple(node.meta["val"].shape)
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)


class LocalHub:
    """Install with monkeypatch: `monkeypatch.setattr(edgeens.compile.aihub, "import_hub", lambda: hub)`."""

    Error, UserError, InternalError = Error, UserError, InternalError
    Device = Device
    QuantizeDtype = QuantizeDtype

    def __init__(self, steps_to_finish: int = 3, max_iterations: int = 20) -> None:
        self.fail_jobs: dict[str, str] = {}
        self.slow_jobs: set[str] = set()
        self.rate_limit: int | None = None  # submissions accepted before the service says "too many requests"
        self.offline = False
        self.reject_token = False
        self.steps_to_finish = steps_to_finish
        self.max_iterations = max_iterations  # the service runs 100 iterations; tests need not
        self.jobs: dict[str, Job] = {}
        self.submitted: list[Job] = []
        self.status_calls = 0
        self._ids = (f"j{n:08d}" for n in itertools.count(1))

    def call(self) -> None:
        """Every request: the network first, then the token."""
        if self.offline:
            raise InternalError("Internal API failure: could not connect to https://workbench.aihub.qualcomm.com")
        if self.reject_token:
            raise UserError("Failed to authenticate.\n| Your API token is invalid |")

    def get_devices(self, name: str = "", os: str = "", attributes: str | list[str] = "") -> list[Device]:
        self.call()
        return [d for d in DEVICES if not name or d.name == name]

    def get_job(self, job_id: str) -> Job:
        self.call()
        if job_id not in self.jobs:
            raise UserError(f"Job {job_id} does not exist")
        return self.jobs[job_id]

    def _submit(self, kind: str, model: Any, device: Any, options: dict, name: str, spec=None) -> Job:
        if self.rate_limit is not None and len(self.submitted) >= self.rate_limit:
            raise UserError("Too many requests: the job submission rate limit was reached; retry later")
        if not isinstance(device, Device) or not (device.name or device.attributes):
            raise UserError("A device (hub.Device) is required")
        job = Job(self, next(self._ids), kind, model, device, options, name or "", spec)
        self.jobs[job.job_id] = job
        self.submitted.append(job)
        return job

    def submit_compile_job(
        self, model: Any, device: Any, name: str | None = None, input_specs: Any = None, options: str = "", **kwargs
    ) -> Job:
        self.call()
        if isinstance(model, torch.nn.Module):
            raise UserError("The torch model must be exported.")
        if isinstance(model, QuantizedModel):
            pass
        elif isinstance(model, (str, Path)):
            path = Path(model)
            if path.suffix != ".onnx" or not path.is_file():
                raise UserError(f"{model} is not a model file AI Hub accepts (.onnx, .pt2, .tflite, ...)")
            if path.with_name(path.name + ".data").exists():
                raise UserError("an ONNX model with external weights must be uploaded as a directory or .zip")
        elif not isinstance(model, torch.export.ExportedProgram):
            raise UserError(f"Unsupported model type {type(model).__name__}")
        parsed = parse_options(options, COMPILE_FLAGS)
        if "--target_runtime" not in parsed:
            raise UserError("compile options need --target_runtime")
        if not isinstance(input_specs, dict) or len(input_specs) != 1:
            raise UserError("input_specs must name the model's one input: {name: (shape, dtype)}")
        spec = next(iter(input_specs.values()))
        shape, dtype = (
            spec if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str) else (spec, "float32")
        )
        if dtype not in DTYPES:
            raise UserError(f"Unsupported input dtype {dtype}; choose from {', '.join(DTYPES)}")
        if not all(isinstance(d, int) and d >= 1 for d in shape):
            raise UserError(f"Input spec {tuple(shape)}: every dimension must be a positive integer")
        return self._submit("compile", model, device, parsed, name or "", (tuple(shape), dtype))

    def submit_quantize_job(
        self,
        model: Any,
        calibration_data: Any,
        weights_dtype: QuantizeDtype = QuantizeDtype.INT8,
        activations_dtype: QuantizeDtype = QuantizeDtype.INT8,
        name: str | None = None,
        options: str = "",
        **kwargs,
    ) -> Job:
        """The service quantizes ONNX models only, with calibration data for the model's one input."""
        self.call()
        path = Path(model) if isinstance(model, (str, Path)) else None
        if path is None or path.suffix != ".onnx" or not path.is_file():
            raise UserError("Quantize jobs take an ONNX model (a float model compiled or exported to ONNX)")
        if weights_dtype not in (QuantizeDtype.INT8, QuantizeDtype.INT4):
            raise UserError(f"Unsupported weights_dtype {weights_dtype}")
        if activations_dtype not in (QuantizeDtype.INT8, QuantizeDtype.INT16):
            raise UserError(f"Unsupported activations_dtype {activations_dtype}")
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        expected = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)
        if not isinstance(calibration_data, dict) or len(calibration_data) != 1:
            raise UserError("calibration_data must name the model's one input: {name: [arrays]}")
        samples = next(iter(calibration_data.values()))
        if not samples or any(tuple(np.shape(a)) != expected for a in samples):
            raise UserError(f"calibration_data: every sample must have the model's input shape {expected}")
        job = self._submit("quantize", path, DEVICES[0], {}, name or "")
        job.calibration = [np.asarray(a, dtype=np.float32) for a in samples]
        job.dtypes = (weights_dtype, activations_dtype)
        return job

    def quantize(self, job: Job) -> QuantizedModel:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        input_name = onnx.load(str(job.model), load_external_data=False).graph.input[0].name
        batches = iter([{input_name: a} for a in job.calibration])

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(batches, None)

        sixteen = job.dtypes[1] == QuantizeDtype.INT16
        out = Path(job.model).with_name(f"{Path(job.model).stem}-hub-{job.job_id}.onnx")
        quantize_static(
            str(job.model),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt16 if sixteen else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={"UseQDQContribOps": sixteen},
        )
        return QuantizedModel(f"q{job.job_id[1:]}", out)

    def submit_inference_job(
        self,
        model: Any,
        device: Any,
        inputs: Any = None,
        name: str | None = None,
        options: str = "",
        profile: bool = True,
        **kwargs,
    ) -> Job:
        self.call()
        if not isinstance(model, TargetModel):
            raise UserError("Inference needs a compiled model (a compile job's target model), not a source model")
        if inputs is None and not profile:
            raise UserError("inputs are required when profile=False")
        return self._submit("profile", model, device, parse_options(options, PROFILE_FLAGS), name or "")

    def measure(self, target: TargetModel, options: dict) -> dict:
        """The profile of `target`, measured on this machine (1 thread), in the client's structure."""
        iterations = min(int(options.get("--max_profiler_iterations", 100)), self.max_iterations)
        unit = options.get("--compute_unit", target.compute_unit).split(",")[0].upper()
        unit = "NPU" if unit == "ALL" else unit
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x = torch.rand(*target.shape, generator=torch.Generator().manual_seed(0))
            if isinstance(target.source, torch.export.ExportedProgram):
                times, layers = _measure_program(target.source.module(), x, iterations)
            else:
                times, layers = _measure_onnx(Path(target.source), x.numpy(), iterations)
        finally:
            torch.set_num_threads(threads)
        detail = [
            {
                "name": name,
                "type": op,
                "compute_unit": "CPU" if unit == "CPU" or op in CPU_FALLBACK else unit,
                "execution_time": int(min(samples)),
            }
            for name, (op, samples) in layers.items()
        ]
        return {
            "execution_summary": {
                "estimated_inference_time": int(np.median(times)),
                "all_inference_times": [int(t) for t in times],
                "first_load_time": 1000,
                "warm_load_time": 500,
                "estimated_inference_peak_memory": 0,
            },
            "execution_detail": detail,
        }


def _measure_program(module: torch.nn.Module, x: torch.Tensor, iterations: int):
    """Whole-model times (µs) and each graph node's times, from running the exported graph node by node."""
    times = []
    with torch.no_grad():
        module(x)  # warm-up
        for _ in range(iterations):
            start = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - start) * 1e6)
        layers: dict[str, tuple[str, list[float]]] = {}

        class Timed(torch.fx.Interpreter):
            def run_node(self, node):
                if node.op != "call_function":
                    return super().run_node(node)
                start = time.perf_counter()
                result = super().run_node(node)
                op = getattr(node.target, "__name__", str(node.target)).split(".")[0]
                layers.setdefault(node.name, (op, []))[1].append((time.perf_counter() - start) * 1e6)
                return result

        for _ in range(min(3, iterations)):
            Timed(module).run(x)
    return times, layers


def _measure_onnx(path: Path, x: np.ndarray, iterations: int):
    """Whole-model times (µs) and each node's kernel times from ONNX Runtime's own profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_name(path.stem + "-localhub"))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    times = []
    session.run(None, {name: x})
    for _ in range(iterations):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e6)
    trace = Path(session.end_profiling())
    layers: dict[str, tuple[str, list[float]]] = defaultdict(lambda: ("", []))
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            layers[node] = (event["args"].get("op_name", ""), [*layers[node][1], float(event["dur"])])
    trace.unlink()
    return times, dict(layers)
