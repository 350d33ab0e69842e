"""A stand-in for the `qai_hub` 0.56 client at its boundary, returning the structures of spec/deployment.md.

Jobs walk through the Hub's states one `get_status` call at a time; a job can be scripted to fail with a reason.
Every submission is recorded so tests can check that a re-run pays for nothing new.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


class State(enum.Enum):
    CREATED = 0
    OPTIMIZING_MODEL = 1
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


# Snapdragon 8 Elite devices and neighbours, as listed in spec/deployment.md 1.4.
DEVICES = [
    Device(
        "Snapdragon 8 Elite QRD",
        "15",
        [
            "chipset:qualcomm-snapdragon-8-elite",
            "os:android",
            "framework:tflite",
            "framework:qnn",
            "framework:onnx",
            "hexagon:v79",
        ],
    ),
    Device(
        "Samsung Galaxy S25",
        "15",
        [
            "chipset:qualcomm-snapdragon-8-elite-for-galaxy",
            "os:android",
            "framework:tflite",
            "framework:qnn",
            "framework:onnx",
        ],
    ),
    Device("Samsung Galaxy S25 Ultra", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy", "os:android"]),
    Device("Samsung Galaxy S25+", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy", "os:android"]),
    Device("Samsung Galaxy S25 (Family)", "15", ["chipset:qualcomm-snapdragon-8-elite-for-galaxy"]),
    Device("Snapdragon 8 Elite Gen 5 QRD", "16", ["chipset:qualcomm-snapdragon-8-elite-gen5", "os:android"]),
    Device("Samsung Galaxy S24", "14", ["chipset:qualcomm-snapdragon-8gen3", "os:android"]),
]

# The client's own example profile (qai_hub/test/test_client.py), as download_profile() returns it.
PROFILE = {
    "execution_summary": {
        "estimated_inference_time": 3652,
        "estimated_inference_peak_memory": 1_000_000,
        "first_load_time": 1374293,
        "warm_load_time": 277823,
        "inference_memory_peak_range": (100_000, 2_000_000),
        "all_inference_times": [10003, 4205],
    },
    "execution_detail": [
        {"compute_unit": "CPU", "execution_time": 23, "name": "model/tf.math.divide/truediv", "type": "MUL"},
        {
            "compute_unit": "NPU",
            "execution_cycles": 180315,
            "execution_time": 127,
            "name": "model/tf.compat.v1.transpose/transpose",
            "type": "TRANSPOSE",
        },
    ],
}


class Job:
    def __init__(
        self,
        hub: FakeHub,
        job_id: str,
        kind: str,
        model: Any,
        device: Device,
        options: str,
        fail_with: str | None,
        states: list[State],
    ) -> None:
        self.hub, self.job_id, self.kind, self.model, self.device, self.options = (
            hub,
            job_id,
            kind,
            model,
            device,
            options,
        )
        self.url = f"https://workbench.aihub.qualcomm.com/jobs/{job_id}/"
        self._states = iter(states)
        self._state = State.CREATED
        self._fail_with = fail_with

    def get_status(self) -> JobStatus:
        self.hub.status_calls += 1
        self._state = next(self._states, self._state)
        if self._state == State.FAILED:
            return JobStatus(State.FAILED, self._fail_with)
        return JobStatus(self._state)

    def download_target_model(self, filename: str) -> str:
        if self._state != State.SUCCESS:
            raise UserError("Job has not finished successfully")
        Path(filename).write_bytes(b"compiled by fake AI Hub for " + self.device.name.encode())
        return filename

    def get_target_model(self) -> str:
        return f"model-of-{self.job_id}"

    def download_profile(self) -> dict:
        if self._state != State.SUCCESS:
            raise UserError("Job has not finished successfully")
        return self.hub.profile_for(self)


class FakeHub:
    """Install with monkeypatch: `monkeypatch.setattr(edgeens.compile.aihub, "import_hub", lambda: hub)`."""

    Error, UserError, InternalError = Error, UserError, InternalError
    Device = Device

    def __init__(self, fail_with: str | None = None, steps_to_finish: int = 3, reject_token: bool = False) -> None:
        self.fail_jobs: dict[str, str] = {}  # a job whose name contains the key fails with the value
        self.slow_jobs: set[str] = set()  # a job whose name contains one of these never finishes
        self.jobs: dict[str, Job] = {}
        self.submitted: list[Job] = []
        self.fail_with = fail_with
        self.steps_to_finish = steps_to_finish
        self.reject_token = reject_token
        self.status_calls = 0
        self.profiles: dict[str, dict] = {}
        self._ids = (f"j{n:08d}" for n in itertools.count(1))

    def _check_token(self) -> None:
        if self.reject_token:
            raise UserError("Failed to authenticate.\n| Your API token is invalid |")

    def get_devices(self, name: str = "", os: str = "", attributes: str | list[str] = "") -> list[Device]:
        self._check_token()
        return [d for d in DEVICES if not name or d.name == name]

    def _submit(self, kind: str, model: Any, device: Device, options: str, name: str = "") -> Job:
        self._check_token()
        fail_with = self.fail_with or next((v for k, v in self.fail_jobs.items() if k in (name or "")), None)
        running = [State.OPTIMIZING_MODEL if kind == "compile" else State.MEASURING_PERFORMANCE]
        if any(k in (name or "") for k in self.slow_jobs):
            states = running * 10_000
        else:
            states = running * max(0, self.steps_to_finish - 1) + [State.FAILED if fail_with else State.SUCCESS]
        job = Job(self, next(self._ids), kind, model, device, options, fail_with, states)
        job.name = name
        self.jobs[job.job_id] = job
        self.submitted.append(job)
        return job

    def submit_compile_job(
        self,
        model: Any,
        device: Device,
        name: str | None = None,
        input_specs: Any = None,
        options: str = "",
        **kwargs: Any,
    ) -> Job:
        if not isinstance(model, (str, Path)) and type(model).__name__ != "ExportedProgram":
            raise UserError("The torch model must be exported.")
        if "--target_runtime" not in options:
            raise UserError("compile options need --target_runtime")
        return self._submit("compile", model, device, options, name or "")

    def submit_inference_job(
        self,
        model: Any,
        device: Device,
        inputs: Any = None,
        name: str | None = None,
        options: str = "",
        profile: bool = True,
        **kwargs: Any,
    ) -> Job:
        if inputs is None and not profile:
            raise UserError("inputs are required when profile=False")
        return self._submit("profile", model, device, options, name or "")

    def get_job(self, job_id: str) -> Job:
        self._check_token()
        if job_id not in self.jobs:
            raise UserError(f"Job {job_id} does not exist")
        return self.jobs[job_id]

    def profile_for(self, job: Job) -> dict:
        return self.profiles.get(job.job_id, PROFILE)
