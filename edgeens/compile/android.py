"""`edgeens compile --target android-assets`: put a checked ONNX export into the demo app's assets.

The app (`android_app/`) runs ONNX Runtime's Android library (the one runtime whose Android build ships in a
registry this project reaches, android_app/README.md says why). It lists `assets/models/*.json`; each names its
model file, the fixed input size (the app's tile), the architecture, the ONNX opset and the onnxruntime version that
checked the export on the host.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeens.compile.artifact import CompileError, ModelCard, now, tool_versions, write_json

ASSETS = Path("app/src/main/assets/models")


def check_app(app_dir: str | Path) -> Path:
    """`app_dir` if it is the demo app, else an error naming the option to fix."""
    app = Path(app_dir)
    if not (app / "app" / "src" / "main" / "AndroidManifest.xml").is_file():
        raise CompileError(
            f"{app} is not the edgeens Android app (no app/src/main/AndroidManifest.xml); pass --android-app "
            "path/to/android_app"
        )
    return app


def bundle_for_android(model: Path, card: ModelCard, app_dir: str | Path, name: str | None = None) -> Path:
    """Copy the ONNX file `model` into `app_dir`'s assets as `<name>.onnx` with `<name>.json` beside it; returns the
    JSON path."""
    from edgeens.compile.onnx import OPSET

    app = check_app(app_dir)
    if card.in_channels != 3:
        raise CompileError(f"the demo app restores RGB photos; this model takes {card.in_channels} channels")
    if model.with_name(model.name + ".data").exists():
        # The app hands ONNX Runtime the model's bytes from the APK's assets: one self-contained file.
        raise CompileError(f"{model} keeps its weights in a separate file (over 2 GB): too large for the demo app")
    name = name or (card.architecture or card.kind.lower())
    folder = app / ASSETS
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / f"{name}.onnx")
    description: dict[str, Any] = {
        "model": f"{name}.onnx",
        "runtime": "onnxruntime",
        "opset": OPSET,
        "input": {"height": card.height, "width": card.width, "channels": 3, "layout": "NCHW RGB [0,1]"},
        "architecture": card.architecture or card.kind,
        "weights_sha256": card.weights_sha256,
        "checked_with": {"onnxruntime": tool_versions().get("onnxruntime")},
        "created": now(),
    }
    write_json(folder / f"{name}.json", description)
    return folder / f"{name}.json"
