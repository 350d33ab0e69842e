"""Run-directory files: nothing is written in place (DESIGN.md), so a kill never leaves half a file."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def write_json(path: str | Path, value: Any) -> None:
    """Write `value` as JSON to a temporary file, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def now() -> str:
    """The current UTC time, ISO 8601 to the second (recorded in every artifact)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
