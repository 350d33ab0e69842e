"""`edgeens serve`: the browser demo. A static page restores a photo from the phone's camera or a file with the
ONNX export, in the browser (onnxruntime-web, WebAssembly), in tiles by the same rules as `edgeens restore`.

The server hands out exactly five things: the page, its script, the model, the model's tile size, and the three
runtime files of onnxruntime-web (installed by `make web`, never committed). Nothing else on disk is reachable, and
it listens on 127.0.0.1 unless the user names another interface."""

from __future__ import annotations

import errno
import json
import os
import socket
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from edgeens.errors import EdgeensError

RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


class ServeError(EdgeensError):
    """The model or the browser runtime is missing or unusable."""


def web_runtime_folder() -> Path:
    """Where `make web` installs onnxruntime-web (EDGEENS_WEB overrides ~/.cache/edgeens/web)."""
    root = Path(os.environ.get("EDGEENS_WEB", Path.home() / ".cache" / "edgeens" / "web"))
    return root / "node_modules" / "onnxruntime-web" / "dist"


def model_info(model: Path) -> dict[str, object]:
    """The page's view of the model: its name and fixed tile size, read as `edgeens restore` reads the model."""
    from edgeens.restore import OVERLAP, load_restorer

    if model.suffix != ".onnx":
        raise ServeError(f"{model} is not an .onnx file; the browser runs the ONNX export (edgeens compile)")
    size = load_restorer(model).size  # names a missing or unreadable file as restore does
    if size is None:
        raise ServeError(f"{model} takes any input size; the page needs a fixed (1, 3, H, W) one: compile with --size")
    return {"name": model.name, "tile": list(size), "overlap": OVERLAP}


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, files: dict[str, bytes | Path], **kwargs) -> None:
        self.files = files
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API: GET's headers, no body
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        path = "/index.html" if path == "/" else path
        source = self.files.get(path)
        if source is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = source.read_bytes() if isinstance(source, Path) else source
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", TYPES.get(Path(path).suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
        pass  # the terminal shows where to point the browser, not every request


def demo_server(model: Path, host: str = "127.0.0.1", port: int = 8000, runtime: Path | None = None):
    """A server for the page, `model` and onnxruntime-web's files (not started: call serve_forever)."""
    info = model_info(model)
    runtime = runtime or web_runtime_folder()
    missing = [name for name in RUNTIME_FILES if not (runtime / name).is_file()]
    if missing:
        raise ServeError(f"onnxruntime-web is not installed in {runtime} (no {missing[0]}); run `make web` first")
    page = resources.files("edgeens") / "web"
    files: dict[str, bytes | Path] = {
        "/index.html": (page / "index.html").read_bytes(),
        "/restore.js": (page / "restore.js").read_bytes(),
        "/model.json": json.dumps(info).encode(),
        "/model.onnx": model,
        **{f"/ort/{name}": runtime / name for name in RUNTIME_FILES},
    }
    try:
        return ThreadingHTTPServer((host, port), partial(_Handler, files=files))
    except socket.gaierror:  # not an address nor a name this machine resolves: the port is not the problem
        raise ServeError(
            f"--host {host} is not an address or host name of this machine; give 127.0.0.1, 0.0.0.0 or one of its "
            "interfaces' addresses"
        ) from None
    except OSError as err:
        if err.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"--host {host} is not an address of this machine; give one of its own") from None
        raise ServeError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from None
