"""`edgeens compile --target android-assets`: put a checked `.pte` into the demo app's assets.

The app (`android_app/`) lists `assets/models/*.json`; each names its program, the fixed input size (the app's tile)
and the architecture, plus the ExecuTorch version that wrote it (the app's runtime must be at least that version).
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


def bundle_for_android(program: Path, card: ModelCard, app_dir: str | Path, name: str | None = None) -> Path:
    """Copy `program` into `app_dir`'s assets as `<name>.pte` with `<name>.json` beside it; returns the JSON path."""
    app = check_app(app_dir)
    if card.in_channels != 3:
        raise CompileError(f"the demo app restores RGB photos; this model takes {card.in_channels} channels")
    name = name or (card.architecture or card.kind.lower())
    folder = app / ASSETS
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(program, folder / f"{name}.pte")
    description: dict[str, Any] = {
        "program": f"{name}.pte",
        "input": {"height": card.height, "width": card.width, "channels": 3, "layout": "NCHW RGB [0,1]"},
        "architecture": card.architecture or card.kind,
        "weights_sha256": card.weights_sha256,
        "executorch": tool_versions().get("executorch"),
        "created": now(),
    }
    write_json(folder / f"{name}.json", description)
    return folder / f"{name}.json"
