"""The browser demo: `edgeens serve` hands out the page, the model and the runtime and nothing else; headless
Chromium restores a photo through the page exactly as `edgeens restore` does with the same ONNX model."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.compile.onnx import export_onnx
from edgeens.errors import EdgeensError
from edgeens.serve import RUNTIME_FILES, demo_server, web_runtime_folder
from tests.compile.test_pipeline import micro_restormer

DRIVER = Path(__file__).parent / "web" / "drive.cjs"


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """A small Restormer exported at 80x80 (tiles over 64 pixels: the default 32-pixel overlap fits)."""
    path = tmp_path_factory.mktemp("web") / "micro-80.onnx"
    export_onnx(micro_restormer().eval(), (torch.rand(1, 3, 80, 80),), path)
    return path


def _serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_the_server_hands_out_the_page_model_and_runtime_only(onnx_model, tmp_path) -> None:
    runtime = tmp_path / "dist"
    runtime.mkdir()
    for name in RUNTIME_FILES:
        (runtime / name).write_bytes(name.encode())
    (runtime / "secret.txt").write_text("not served")
    server = demo_server(onnx_model, port=0, runtime=runtime)
    try:
        assert server.server_address[0] == "127.0.0.1"  # nobody else on the network reaches it unless asked
        url = _serving(server)
        status, page = _get(url)
        assert status == 200 and b"Restore a photo" in page and b'capture="environment"' in page
        assert _get(url + "model.onnx") == (200, onnx_model.read_bytes())
        assert json.loads(_get(url + "model.json")[1]) == {"name": "micro-80.onnx", "tile": [80, 80], "overlap": 32}
        assert _get(url + "ort/ort.wasm.min.js") == (200, b"ort.wasm.min.js")
        for elsewhere in ("ort/secret.txt", "../pyproject.toml", "%2e%2e/pyproject.toml", "etc/passwd", "tests"):
            assert _get(url + elsewhere)[0] == 404, elsewhere
    finally:
        server.shutdown()
        server.server_close()


def test_bad_models_and_a_missing_runtime_are_one_line_each(onnx_model, tmp_path) -> None:
    dynamic = tmp_path / "dynamic.onnx"
    torch.onnx.export(
        torch.nn.Conv2d(3, 3, 3, padding=1),
        (torch.rand(1, 3, 8, 8),),
        str(dynamic),
        dynamic_axes={"input": {2: "h"}},
        input_names=["input"],
        dynamo=False,
    )
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    cases = [
        (tmp_path / "missing.onnx", "does not exist"),
        (tmp_path / "broken.onnx", "not a readable ONNX model"),
        (dynamic, "needs a fixed"),
    ]
    (tmp_path / "model.pte").write_bytes(b"x")
    cases.append((tmp_path / "model.pte", "not an .onnx file"))
    for model, message in cases:
        with pytest.raises(EdgeensError, match=message):
            demo_server(model, port=0, runtime=tmp_path)
    with pytest.raises(EdgeensError, match="run `make web` first"):
        demo_server(onnx_model, port=0, runtime=tmp_path / "nothing")
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.slow
def test_headless_chromium_restores_a_photo_as_edgeens_restore_does(onnx_model, tmp_path) -> None:
    runtime = web_runtime_folder()
    chromium = shutil.which("chromium")
    assert chromium and (runtime / RUNTIME_FILES[0]).is_file(), "run `make web` (onnxruntime-web, chromium)"
    rng = np.random.default_rng(0)
    photo = (rng.random((100, 130, 3)) * 255).astype(np.uint8)  # 2 x 3 tiles of 80 with the 32-pixel overlap
    Image.fromarray(photo).save(tmp_path / "photo.png")
    expected = CliRunner().invoke(
        app, ["restore", str(tmp_path / "photo.png"), "--model", str(onnx_model), "--out", str(tmp_path / "cli")]
    )
    assert expected.exit_code == 0, expected.output
    server = demo_server(onnx_model, port=0, runtime=runtime)
    try:
        url = _serving(server)
        shot = tmp_path / "page.png"
        done = subprocess.run(
            ["node", str(DRIVER), url, str(tmp_path / "photo.png"), str(shot)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["error"] == "" and result["tiles"] == 6, result
        page = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["png"].split(",", 1)[1]))).convert("RGB"))
        cli = np.asarray(Image.open(tmp_path / "cli" / "photo.png").convert("RGB"))
        assert page.shape == cli.shape == photo.shape
        assert np.abs(page.astype(int) - cli.astype(int)).max() <= 1  # WebAssembly and host float rounding
        assert shot.stat().st_size > 10_000

        (tmp_path / "not-an-image.png").write_bytes(b"this is text")
        bad = subprocess.run(
            ["node", str(DRIVER), url, str(tmp_path / "not-an-image.png")], capture_output=True, text=True, timeout=300
        )
        assert bad.returncode == 0, bad.stderr
        assert "is not an image this browser can decode" in json.loads(bad.stdout.strip().splitlines()[-1])["error"]

        # Out of memory: the photo's whole-image buffers (3 x 100 x 130 floats) fail, the tiles' would not.
        starved = subprocess.run(
            ["node", str(DRIVER), url, str(tmp_path / "photo.png")],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "EDGEENS_WEB_MAX_FLOATS": "30000"},
        )
        assert starved.returncode == 0, starved.stderr
        error = json.loads(starved.stdout.strip().splitlines()[-1])["error"]
        assert error == "130x100 is too large for this browser's memory; try a smaller photo", error
    finally:
        server.shutdown()
        server.server_close()


def test_head_is_answered_like_get_without_a_body_and_a_bad_host_is_named(onnx_model, tmp_path) -> None:
    runtime = tmp_path / "dist"
    runtime.mkdir()
    for name in RUNTIME_FILES:
        (runtime / name).write_bytes(name.encode())
    server = demo_server(onnx_model, port=0, runtime=runtime)
    base = _serving(server)
    try:
        request = urllib.request.Request(base + "model.onnx", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and response.read() == b""
            assert int(response.headers["Content-Length"]) == onnx_model.stat().st_size
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(EdgeensError, match=r"--host 999.1.1.1 is not an address or host name of this machine"):
        demo_server(onnx_model, host="999.1.1.1", port=0, runtime=runtime)
