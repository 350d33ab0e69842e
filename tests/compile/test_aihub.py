from __future__ import annotations

import json
import re

import pytest
import torch

import edgeens.compile.aihub as aihub
from edgeens.compile.aihub import LEDGER, AIHubError, HubTarget, compile_on_hub, hub_device
from tests.local_hub import LocalHub

SECRET = "sk-edgeens-test-token-0123456789"


@pytest.fixture
def token(tmp_path, monkeypatch):
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {SECRET}\napi_url = https://workbench.aihub.qualcomm.com\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    return ini


@pytest.fixture
def hub(monkeypatch, token) -> LocalHub:
    fake = LocalHub()
    monkeypatch.setattr(aihub, "import_hub", lambda: fake)
    return fake


def exported():
    return torch.export.export(torch.nn.Conv2d(3, 3, 1).eval(), (torch.rand(1, 3, 8, 8),))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Snapdragon 8 Elite QRD", "Snapdragon 8 Elite QRD"),
        ("snapdragon 8 elite", "Snapdragon 8 Elite QRD"),  # a chipset's marketing name means its reference phone
        ("Samsung Galaxy S25", "Samsung Galaxy S25"),
        ("Galaxy S25 Ultra", "Samsung Galaxy S25 Ultra"),
    ],
)
def test_device_names_resolve(hub, name, expected) -> None:
    assert hub_device(hub, name).name == expected


def test_a_chipset_name_selects_by_attribute(hub) -> None:
    device = hub_device(hub, "qualcomm-snapdragon-8-elite-for-galaxy")
    assert device.name == "" and device.attributes == "chipset:qualcomm-snapdragon-8-elite-for-galaxy"
    assert hub_device(hub, "chipset:qualcomm-snapdragon-8-elite").attributes == "chipset:qualcomm-snapdragon-8-elite"


def test_ambiguous_and_unknown_devices_list_the_candidates(hub) -> None:
    with pytest.raises(AIHubError, match="ambiguous.*Samsung Galaxy S25 Ultra.*Samsung Galaxy S25\\+"):
        hub_device(hub, "Galaxy S25")
    with pytest.raises(AIHubError, match="no device 'Snapdragon 8 Elitte'.*Snapdragon 8 Elite QRD"):
        hub_device(hub, "Snapdragon 8 Elitte")


def test_compile_job_is_recorded_at_once_and_a_rerun_waits_on_the_same_job(hub, tmp_path) -> None:
    entry = compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite", "tflite", poll_s=0))
    assert len(hub.submitted) == 1
    job = hub.submitted[0]
    assert job.options == {"--target_runtime": "tflite", "--compute_unit": "cpu"}
    assert job.device.name == "Snapdragon 8 Elite QRD" and entry["compute_unit"] == "cpu"
    assert entry["job_id"] == job.job_id and (tmp_path / entry["file"]).read_bytes().startswith(b"tflite model")
    ledger = json.loads((tmp_path / LEDGER).read_text())["jobs"]
    assert ledger["compile--Snapdragon 8 Elite QRD--tflite--cpu"]["state"] == "SUCCESS"

    again = compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite", poll_s=0))
    assert len(hub.submitted) == 1 and again["job_id"] == job.job_id  # nothing new paid for


def test_an_interrupted_wait_resumes_on_the_recorded_job(hub, tmp_path, monkeypatch) -> None:
    hub.steps_to_finish = 50
    with pytest.raises(AIHubError, match="still OPTIMIZING_MODEL.*run the same command again"):
        compile_on_hub(
            exported(),
            (1, 3, 8, 8),
            tmp_path,
            HubTarget("Samsung Galaxy S25", "qnn_context_binary", timeout_s=0, poll_s=0),
        )
    recorded = json.loads((tmp_path / LEDGER).read_text())["jobs"][
        "compile--Samsung Galaxy S25--qnn_context_binary--cpu"
    ]
    assert recorded["job_id"] == hub.submitted[0].job_id
    entry = compile_on_hub(
        exported(), (1, 3, 8, 8), tmp_path, HubTarget("Samsung Galaxy S25", "qnn_context_binary", poll_s=0)
    )
    assert len(hub.submitted) == 1 and entry["job_id"] == recorded["job_id"]
    assert entry["file"].endswith(".bin")


def test_a_failed_job_reports_its_reason_and_is_resubmitted_next_time(hub, tmp_path) -> None:
    hub.fail_jobs = {"edgeens": "Compilation failed: op LayerNorm is not supported on HTP"}
    with pytest.raises(AIHubError, match="failed: Compilation failed: op LayerNorm"):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite", poll_s=0))
    recorded = json.loads((tmp_path / LEDGER).read_text())["jobs"]["compile--Snapdragon 8 Elite QRD--tflite--cpu"]
    assert recorded["state"] == "FAILED" and "LayerNorm" in recorded["failure"]
    hub.fail_jobs = {}
    compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite", poll_s=0))
    assert len(hub.submitted) == 2


def test_without_a_token_the_command_stops_with_the_configure_instruction(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    monkeypatch.setattr(aihub, "import_hub", lambda: pytest.fail("the client must not be used without a token"))
    with pytest.raises(AIHubError, match="no Qualcomm AI Hub token.*qai-hub configure --api_token"):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))


def test_a_rejected_token_is_reported_without_printing_it(hub, tmp_path, capsys) -> None:
    hub.reject_token = True
    with pytest.raises(AIHubError) as caught:
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))
    assert "Failed to authenticate" in str(caught.value) and "qai-hub configure" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in capsys.readouterr().out


def test_unknown_runtime_is_refused(hub, tmp_path) -> None:
    with pytest.raises(AIHubError, match="unknown AI Hub runtime 'coreml'"):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "coreml"))


def test_compile_model_aihub_target_records_the_job(hub, tmp_path) -> None:
    from edgeens.compile.pipeline import CompileOptions, compile_model
    from tests.compile.test_pipeline import micro_restormer

    options = CompileOptions(targets=("aihub",), aihub_device="Snapdragon 8 Elite QRD", aihub_poll_s=0)
    manifest = compile_model(micro_restormer(), 16, 16, tmp_path, options, log=lambda _: None)
    entry = manifest["targets"]["aihub--tflite--cpu"]
    assert entry["job_id"] == hub.submitted[0].job_id and type(hub.submitted[0].model).__name__ == "ExportedProgram"
    assert entry["file"] in manifest["files"]


@pytest.mark.parametrize("precision, activations", [("w8a8", "INT8"), ("w8a16", "INT16")])
def test_a_quantized_hub_target_quantizes_the_float_onnx_export_on_hub_then_compiles_it(
    hub, tmp_path, precision, activations
) -> None:
    from edgeens.compile.pipeline import CompileOptions, compile_model
    from tests.compile.test_pipeline import micro_restormer

    options = CompileOptions(
        targets=("aihub",),
        precision=precision,
        aihub_device="Snapdragon 8 Elite QRD",
        aihub_runtime="qnn_context_binary",
        aihub_compute_unit="npu",
        aihub_poll_s=0,
    )
    calibration = [torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    manifest = compile_model(micro_restormer(), 16, 16, tmp_path, options, calibration, log=lambda _: None)
    quantize_job, compile_job = hub.submitted
    assert quantize_job.kind == "quantize" and quantize_job.model.name == "model.onnx"  # the float export
    assert quantize_job.dtypes[1].name == activations and len(quantize_job.calibration) == 3
    assert type(compile_job.model).__name__ == "QuantizedModel"  # the compile job takes Hub's quantized model
    entry = manifest["targets"][f"aihub--qnn_context_binary--npu--{precision}"]
    assert entry["precision"] == precision and entry["quantize_job_id"] == quantize_job.job_id
    assert entry["file"] == f"aihub-qnn_context_binary-{precision}.bin"
    ledger = json.loads((tmp_path / LEDGER).read_text())["jobs"]
    assert ledger[f"quantize--{precision}"]["state"] == "SUCCESS"
    # a re-run waits on the recorded jobs instead of paying for new ones
    compile_model(micro_restormer(), 16, 16, tmp_path, options, calibration, log=lambda _: None)
    assert len(hub.submitted) == 2


def test_the_test_hubs_quantize_job_refuses_what_the_service_refuses(hub, tmp_path) -> None:
    from edgeens.compile.onnx import export_onnx

    path = tmp_path / "m.onnx"
    export_onnx(torch.nn.Conv2d(3, 3, 1).eval(), (torch.rand(1, 3, 8, 8),), path)
    good = {"image": [torch.rand(1, 3, 8, 8).numpy()]}
    with pytest.raises(hub.UserError, match="ONNX model"):
        hub.submit_quantize_job(exported(), good)
    with pytest.raises(hub.UserError, match="input shape"):
        hub.submit_quantize_job(str(path), {"image": [torch.rand(1, 3, 4, 4).numpy()]})
    with pytest.raises(hub.UserError, match="activations_dtype"):
        hub.submit_quantize_job(str(path), good, activations_dtype=hub.QuantizeDtype.INT4)


def test_without_a_network_the_hub_is_named_unreachable_within_seconds(token, tmp_path, monkeypatch) -> None:
    import time
    import types

    real_client = types.SimpleNamespace(__name__="qai_hub")  # what the real package looks like to connect()
    monkeypatch.setattr(aihub, "import_hub", lambda: real_client)
    tried = []

    def no_route(address, timeout=None):
        tried.append((address, timeout))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(aihub.socket, "create_connection", no_route)
    start = time.perf_counter()
    with pytest.raises(AIHubError, match="cannot be reached from this machine.*nothing was submitted") as caught:
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))
    assert time.perf_counter() - start < 5 and SECRET not in str(caught.value)
    assert tried == [(("workbench.aihub.qualcomm.com", 443), aihub.REACH_TIMEOUT_S)]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    with pytest.raises(AIHubError, match="through the proxy proxy.internal:3128"):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))


def test_a_malformed_client_ini_is_named(tmp_path, monkeypatch) -> None:
    ini = tmp_path / "client.ini"
    ini.write_bytes(b"\xff\xfe[api]\napi_token = \x80\x81\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    monkeypatch.setattr(aihub, "import_hub", lambda: pytest.fail("the client must not be used"))
    with pytest.raises(AIHubError, match="unreadable.*qai-hub configure"):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))


def test_the_test_hub_refuses_what_the_service_refuses(hub, tmp_path) -> None:
    device = hub_device(hub, "Snapdragon 8 Elite")
    spec = {"image": ((1, 3, 8, 8), "float32")}
    refusals = {
        "The torch model must be exported": dict(model=torch.nn.Conv2d(3, 3, 1), input_specs=spec),
        "Unknown option --frobnicate": dict(options="--target_runtime tflite --frobnicate"),
        "Invalid --compute_unit tpu": dict(options="--target_runtime tflite --compute_unit tpu"),
        "Invalid --target_runtime coreml": dict(options="--target_runtime coreml"),
        "every dimension must be a positive integer": dict(input_specs={"image": ((1, 3, 0, 8), "float32")}),
        "Unsupported input dtype float64": dict(input_specs={"image": ((1, 3, 8, 8), "float64")}),
    }
    for message, change in refusals.items():
        arguments = dict(model=exported(), device=device, input_specs=spec, options="--target_runtime tflite")
        with pytest.raises(hub.UserError, match=message):
            hub.submit_compile_job(**(arguments | change))
    with pytest.raises(hub.UserError, match="needs a compiled model"):
        hub.submit_inference_job(model=exported(), device=device)
    assert hub.submitted == []


def test_an_input_spec_that_does_not_fit_the_program_fails_its_job_with_the_reason(hub, tmp_path) -> None:
    with pytest.raises(
        AIHubError, match=r"failed: Compilation failed: input spec shape \(1, 3, 16, 16\).*\(1, 3, 8, 8\)"
    ):
        compile_on_hub(exported(), (1, 3, 16, 16), tmp_path, HubTarget("Snapdragon 8 Elite", "tflite", poll_s=0))


def test_an_onnx_upload_is_compiled_and_profiled_with_onnx_runtimes_own_layer_times(hub, tmp_path) -> None:
    from edgeens.compile.onnx import export_onnx

    path = tmp_path / "conv.onnx"
    export_onnx(torch.nn.Conv2d(3, 3, 3, padding=1).eval(), (torch.rand(1, 3, 8, 8),), path)
    device = hub_device(hub, "Snapdragon 8 Elite")
    job = hub.submit_compile_job(path, device, "onnx", {"image": ((1, 3, 8, 8), "float32")}, "--target_runtime onnx")
    while not job.get_status().finished:
        pass
    profile_job = hub.submit_inference_job(job.get_target_model(), device, options="--compute_unit npu")
    while not profile_job.get_status().finished:
        pass
    profile = profile_job.download_profile()
    assert len(profile["execution_summary"]["all_inference_times"]) == hub.max_iterations
    conv = next(layer for layer in profile["execution_detail"] if layer["type"] == "Conv")  # ORT adds reorders
    assert conv["compute_unit"] == "NPU" and conv["execution_time"] >= 0


def test_a_rate_limit_says_to_wait_and_keeps_what_was_submitted(hub, tmp_path) -> None:
    from tests.profile.test_aihub import hub_table

    hub.rate_limit = 5
    with pytest.raises(AIHubError, match="Too many requests.*wait a few minutes and run the same command again"):
        hub_table(tmp_path, "Snapdragon 8 Elite")
    assert len(json.loads((tmp_path / LEDGER).read_text())["jobs"]) == 5  # every accepted job is recorded
    hub.rate_limit = None
    hub_table(tmp_path, "Snapdragon 8 Elite")
    assert sum(job.kind == "compile" for job in hub.submitted) == 17  # the 5 were collected, not resubmitted


def test_an_offline_hub_fails_in_one_line_within_seconds_without_the_token(hub, tmp_path) -> None:
    import time

    hub.offline = True
    start = time.perf_counter()
    with pytest.raises(AIHubError, match="refused to list devices: Internal API failure") as caught:
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite", "tflite", poll_s=0))
    assert time.perf_counter() - start < 5 and SECRET not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("api_token = abc\n", "has no [api] section header"),
        ("[other]\napi_token = abc\n", "has no [api] section, so no token"),
        (None, "is a folder, not a file"),
    ],
)
def test_a_client_ini_without_its_section_or_that_is_a_folder_is_named_for_what_it_is(
    tmp_path, monkeypatch, content, said
) -> None:
    ini = tmp_path / "client.ini"
    if content is None:
        ini.mkdir()
    else:
        ini.write_text(content)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    monkeypatch.setattr(aihub, "import_hub", lambda: pytest.fail("the client must not be used"))
    with pytest.raises(AIHubError, match=re.escape(said)):
        compile_on_hub(exported(), (1, 3, 8, 8), tmp_path, HubTarget("Snapdragon 8 Elite QRD", "tflite"))
