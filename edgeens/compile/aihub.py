"""Qualcomm AI Hub: the token check, device names, jobs that survive an interruption, and compiled downloads.

Every job id is written to `aihub.json` in the output folder the moment the Hub returns it, so a re-run after a
crash or Ctrl-C waits on the same job instead of paying for a new one. The `qai_hub` client is imported lazily
(`import_hub`), which is also where tests put their fake.
"""

from __future__ import annotations

import configparser
import difflib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from rich import get_console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgeens.compile.artifact import CompileError, now, write_json

LEDGER = "aihub.json"
RUNTIMES = {"tflite": ".tflite", "qnn_context_binary": ".bin", "onnx": ".onnx"}
# Where AI Hub runs a model (its --compute_unit): the paper measures the phone's CPU, so that is the default.
COMPUTE_UNITS = ("cpu", "gpu", "npu")
# Names that refer to a reference phone of a chipset: "Snapdragon 8 Elite" means "Snapdragon 8 Elite QRD".
DEVICE_SUFFIXES = ("", " QRD", " (Family)")
CONFIGURE = "qai-hub configure --api_token <YOUR_API_TOKEN>  (token from https://aihub.qualcomm.com, Account page)"


class AIHubError(CompileError):
    """Anything Qualcomm AI Hub refused or failed at, with its reason and what to do."""


def import_hub() -> Any:
    """The `qai_hub` module (replaced by a fake in tests)."""
    try:
        import qai_hub
    except ImportError:
        raise AIHubError("Qualcomm AI Hub needs the qai-hub package: pip install qai-hub") from None
    return qai_hub


DEFAULT_API_URL = "https://app.aihub.qualcomm.com"
REACH_TIMEOUT_S = 5.0


def connect() -> Any:
    """The `qai_hub` client, after checking that a token is configured (without ever reading it out) and, for the
    real client, that the service answers at all: without a network the client retries for about a minute and
    then reports an "Internal API failure"."""
    path = Path(os.environ.get("QAIHUB_CLIENT_INI") or Path.home() / ".qai_hub" / "client.ini")
    config = configparser.ConfigParser()
    if path.is_dir():
        raise AIHubError(
            f"Qualcomm AI Hub's configuration {path} is a folder, not a file; remove it, then run: {CONFIGURE}"
        )
    try:
        config.read(path, encoding="utf-8")
    except configparser.MissingSectionHeaderError:
        raise AIHubError(
            f"Qualcomm AI Hub's configuration {path} has no [api] section header (its first line must be [api]); "
            f"run: {CONFIGURE}"
        ) from None
    except (configparser.Error, UnicodeDecodeError) as err:
        why = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else str(err).splitlines()[0]
        raise AIHubError(f"Qualcomm AI Hub's configuration {path} is unreadable ({why}); run: {CONFIGURE}") from None
    if not path.is_file():
        raise AIHubError(f"no Qualcomm AI Hub token is configured ({path} does not exist); run: {CONFIGURE}")
    if not config.has_section("api"):
        raise AIHubError(f"{path} has no [api] section, so no token; run: {CONFIGURE}")
    if not config.get("api", "api_token", fallback="").strip():
        raise AIHubError(f"no Qualcomm AI Hub token is configured ({path} has none); run: {CONFIGURE}")
    hub = import_hub()
    if getattr(hub, "__name__", "") == "qai_hub":  # the real client; a test Hub simulates the network itself
        check_reachable(config.get("api", "api_url", fallback=DEFAULT_API_URL))
    return hub


def check_reachable(api_url: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Open (and close) one TCP connection to the Hub, or to the HTTPS proxy when one is set, within `timeout_s`."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlparse(proxy if proxy else api_url)
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    if not host:
        raise AIHubError(f"Qualcomm AI Hub's api_url {api_url!r} names no host; run: {CONFIGURE}")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        via = f" through the proxy {host}:{port}" if proxy else f" ({host}:{port})"
        raise AIHubError(
            f"Qualcomm AI Hub cannot be reached from this machine{via}: {err.strerror or err}. Check the network "
            "(and HTTPS_PROXY if you need one); nothing was submitted"
        ) from None


def call(hub: Any, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the Hub; turn its errors into an AIHubError that says what was being done."""
    try:
        return function(*args, **kwargs)
    except hub.Error as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = f"; check the token with: {CONFIGURE}" if "authenticate" in text.lower() else ""
        if "too many requests" in text.lower() or "rate limit" in text.lower():
            hint = (
                "; wait a few minutes and run the same command again: the jobs already submitted are recorded "
                "and are collected, not paid for twice"
            )
        raise AIHubError(f"Qualcomm AI Hub refused to {what}: {text}{hint}") from None


def hub_device(hub: Any, name: str) -> Any:
    """An AI Hub device for a device name, a reference-phone name ("Snapdragon 8 Elite" -> its QRD), or a chipset
    (`qualcomm-snapdragon-8-elite` or `chipset:...`). An ambiguous or unknown name lists the candidates."""
    devices = call(hub, "list devices", hub.get_devices)
    names = sorted({d.name for d in devices})
    by_lower = {n.lower(): n for n in names}
    for suffix in DEVICE_SUFFIXES:
        exact = by_lower.get((name + suffix).lower())
        if exact:
            return next(d for d in devices if d.name == exact)
    chipset = name.lower().removeprefix("chipset:")
    chipsets = {a.removeprefix("chipset:") for d in devices for a in d.attributes if a.startswith("chipset:")}
    if chipset in chipsets:  # every phone with this chip: the Hub picks an available one
        return hub.Device(attributes=f"chipset:{chipset}")
    partial = [n for n in names if name.lower() in n.lower()]
    if len(partial) == 1:
        return next(d for d in devices if d.name == partial[0])
    if partial:
        raise AIHubError(f"device {name!r} is ambiguous; it matches: {', '.join(partial)}. Name one of them.")
    close = difflib.get_close_matches(name, names, n=6, cutoff=0.4) or names[:10]
    raise AIHubError(
        f"Qualcomm AI Hub has no device {name!r}. Closest names: {', '.join(close)}. "
        "A chipset also works, e.g. qualcomm-snapdragon-8-elite (run `qai-hub list-devices` for all)."
    )


def device_label(device: Any) -> str:
    return device.name or ", ".join(device.attributes if isinstance(device.attributes, list) else [device.attributes])


class JobLedger:
    """`aihub.json`: every job this folder has submitted, by a key that says what it was for."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LEDGER
        if self.path.is_file():
            try:
                self.jobs: dict[str, dict[str, Any]] = json.loads(self.path.read_text())["jobs"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AIHubError(f"{self.path} is not a readable job ledger; delete it to submit new jobs") from None
        else:
            self.jobs = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.jobs.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.jobs[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"jobs": self.jobs})


@dataclass(frozen=True)
class HubSession:
    """What every AI Hub step opens first: the client (token checked), the device resolved from its name, its
    label for job keys, and the folder's job ledger."""

    hub: Any
    device: Any
    label: str
    ledger: JobLedger


def open_session(device_name: str, compute_unit: str, folder: str | Path) -> HubSession:
    """The session of one step on `device_name`'s `compute_unit`, ledgered in `folder` (created if missing)."""
    check_compute_unit(compute_unit)
    hub = connect()
    device = hub_device(hub, device_name)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return HubSession(hub, device, device_label(device), JobLedger(folder))


def submit_once(hub: Any, ledger: JobLedger, key: str, what: str, submit: Callable[[], Any]) -> Any:
    """The job recorded under `key` if it has not failed, else a newly submitted one (recorded at once)."""
    entry = ledger.get(key)
    if entry and entry.get("state") != "FAILED":
        return call(hub, f"look up job {entry['job_id']}", hub.get_job, entry["job_id"])
    job = call(hub, what, submit)
    ledger.put(key, {"job_id": job.job_id, "url": getattr(job, "url", None), "submitted": now(), "state": "CREATED"})
    return job


def wait_for(hub: Any, ledger: JobLedger, key: str, job: Any, timeout_s: float = 3600.0, poll_s: float = 10.0) -> None:
    """Wait for `job` with a live status line; its final state (and any failure reason) goes into the ledger."""
    start = time.monotonic()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not get_console().is_terminal) as progress:  # no empty log line
        task = progress.add_task(f"AI Hub job {job.job_id}", total=None)
        while True:
            status = call(hub, f"get the status of job {job.job_id}", job.get_status)
            state = getattr(status.code, "name", str(status.code))
            progress.update(task, description=f"AI Hub job {job.job_id} ({key}): {state}")
            if status.finished:
                break
            if time.monotonic() - start > timeout_s:
                ledger.put(key, {**ledger.get(key), "state": state})
                raise AIHubError(
                    f"job {job.job_id} ({key}) is still {state} after {timeout_s:.0f} s; run the same command "
                    f"again to keep waiting on it (its id is in {ledger.path}), or see {getattr(job, 'url', '')}"
                )
            time.sleep(poll_s)
    entry = {**ledger.get(key), "state": "SUCCESS" if status.success else "FAILED"}
    if not status.success:
        entry["failure"] = status.message or "no reason given"
        ledger.put(key, entry)
        raise AIHubError(f"AI Hub job {job.job_id} ({key}) failed: {entry['failure']}")
    ledger.put(key, entry)


def compile_options(runtime: str, compute_unit: str) -> str:
    """The compile job's options: the target runtime and where it runs (AI Hub's own flag names)."""
    return f"--target_runtime {runtime} --compute_unit {compute_unit}"


def check_compute_unit(compute_unit: str) -> str:
    if compute_unit not in COMPUTE_UNITS:
        raise AIHubError(f"unknown compute unit {compute_unit!r}; choose one of: {', '.join(COMPUTE_UNITS)}")
    return compute_unit


# AI Hub's quantize job: (weights, activations) per edgeens precision name (edgeens.compile.quantize.PRECISIONS).
HUB_PRECISIONS = {"w8a8": ("INT8", "INT8"), "w8a16": ("INT8", "INT16")}


def quantize_on_hub(
    onnx_path: Path,
    calibration: list[Any],
    precision: str,
    out_dir: str | Path,
    timeout_s: float = 3600.0,
    poll_s: float = 10.0,
) -> tuple[Any, dict[str, Any]]:
    """Quantize a float ONNX export on AI Hub (its quantize job, as ai-hub-models does for the NPU): `calibration`
    is a list of (1, C, H, W) arrays of the task's training crops. Returns the quantized model (for a compile job)
    and the ledger entry's summary."""
    if precision not in HUB_PRECISIONS:
        raise AIHubError(f"AI Hub quantizes to {', '.join(HUB_PRECISIONS)}, not {precision!r}")
    if not calibration:
        raise AIHubError("an AI Hub quantize job needs calibration images (the task's training crops)")
    hub = connect()
    ledger = JobLedger(out_dir)
    key = f"quantize--{precision}"
    weights, activations = (getattr(hub.QuantizeDtype, name) for name in HUB_PRECISIONS[precision])

    def submit() -> Any:
        return hub.submit_quantize_job(
            model=str(onnx_path),
            calibration_data={"image": [np.asarray(c, dtype=np.float32) for c in calibration]},
            weights_dtype=weights,
            activations_dtype=activations,
            name=f"edgeens {Path(out_dir).name} {precision}",
        )

    job = submit_once(hub, ledger, key, f"submit a {precision} quantize job", submit)
    wait_for(hub, ledger, key, job, timeout_s, poll_s)
    model = call(hub, f"get the quantized model of job {job.job_id}", job.get_target_model)
    return model, {"quantize_job_id": job.job_id, "calibration_images": len(calibration)}


@dataclass(frozen=True)
class HubTarget:
    """What an AI Hub compile job builds for: the device (by name), runtime and compute unit, the model's
    precision, and how long its job is waited for and how often it is polled."""

    device: str
    runtime: str = "tflite"
    compute_unit: str = "cpu"
    precision: str = "fp32"
    timeout_s: float = 3600.0
    poll_s: float = 10.0


def compile_on_hub(source: Any, input_shape: tuple[int, ...], out_dir: str | Path, target: HubTarget) -> dict[str, Any]:
    """Compile `source` (a torch.export program, an ONNX path, or a quantize job's model of `target.precision`) for
    `target`'s device, runtime and compute unit, wait, and download the compiled model into `out_dir`. Returns the
    entry for compile.json."""
    runtime, compute_unit, precision = target.runtime, target.compute_unit, target.precision
    if runtime not in RUNTIMES:
        raise AIHubError(f"unknown AI Hub runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    session = open_session(target.device, compute_unit, out_dir)
    hub, device, label, ledger = session.hub, session.device, session.label, session.ledger
    key = f"compile--{label}--{runtime}--{compute_unit}" + ("" if precision == "fp32" else f"--{precision}")

    def submit() -> Any:
        return hub.submit_compile_job(
            model=str(source) if isinstance(source, Path) else source,
            device=device,
            name=f"edgeens {Path(out_dir).name} {runtime}",
            input_specs={"image": (tuple(input_shape), "float32")},
            options=compile_options(runtime, compute_unit),
        )

    job = submit_once(hub, ledger, key, f"submit a compile job for {label}", submit)
    wait_for(hub, ledger, key, job, target.timeout_s, target.poll_s)
    suffix = "" if precision == "fp32" else f"-{precision}"
    file = Path(out_dir) / f"aihub-{runtime}{suffix}{RUNTIMES[runtime]}"
    downloaded = call(hub, f"download the model of job {job.job_id}", job.download_target_model, str(file))
    path = Path(downloaded or file)
    return {
        "device": label,
        "runtime": runtime,
        "compute_unit": compute_unit,
        "precision": precision,
        "job_id": job.job_id,
        "url": getattr(job, "url", None),
        "file": path.name,
        "bytes": path.stat().st_size if path.is_file() else None,
    }
