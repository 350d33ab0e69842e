"""The output folder of `edgeens compile`: which model it holds, its `compile.json`, and the numeric check.

A folder holds the artifacts of one model at one input size. `compile.json` names that model by the hash of its
weights, so a second model is never compiled over the first by accident (`--force` replaces it), and a re-run of
the same model updates the entries in place (and waits on the same AI Hub jobs).
"""

from __future__ import annotations

import json
import math
import platform
import resource
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgeens.errors import EdgeensError
from edgeens.files import now, write_json  # noqa: F401 (re-exported: compile's modules import them from here)
from edgeens.limits import MAX_SIDE  # a program is one tile: edgeens restore tiles photos larger than it
from edgeens.models import EXPORT_FORM_VERSION
from edgeens.models.checkpoint import weights_hash

FORMAT = "edgeens.compile.v1"
MANIFEST = "compile.json"
FP32_TOLERANCE = 1e-4  # max abs error between a float artifact and eager PyTorch
SIZE_MULTIPLE = 8  # three 2x downsamplings: every level's feature map must have integer sides


class CompileError(EdgeensError):
    """A model, size or output folder that cannot be compiled, with what to do about it."""


def parse_size(text: str | int) -> tuple[int, int]:
    """`256` or `256x384` (height x width) -> (height, width), both multiples of 8."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        height, width = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        raise CompileError(f"input size {text!r} is not a number or HxW pair; write e.g. 256 or 256x384") from None
    if len(parts) > 2 or height <= 0 or width <= 0:
        raise CompileError(f"input size {text!r} must be one positive side or HxW, e.g. 256 or 256x384")
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        fixed = "x".join(str(max(SIZE_MULTIPLE, round(v / SIZE_MULTIPLE) * SIZE_MULTIPLE)) for v in (height, width))
        raise CompileError(
            f"input size {height}x{width} is not a multiple of {SIZE_MULTIPLE} on both sides (the U-Net halves it "
            f"three times); use e.g. {fixed} (edgeens restore pads photos of any size to the program's tiles)"
        )
    if max(height, width) > MAX_SIDE:
        raise CompileError(
            f"input size {height}x{width}: a program over {MAX_SIDE} pixels a side needs more memory to build and run "
            f"than a phone (or this tool's tests) have; build one of at most {MAX_SIDE} and let edgeens restore tile "
            "larger photos"
        )
    return height, width


@dataclass(frozen=True)
class ModelCard:
    """What an output folder holds: a model, by the hash of its weights, at one input size."""

    kind: str
    architecture: str | None
    weights_sha256: str
    parameters: int
    in_channels: int
    height: int
    width: int

    @classmethod
    def of(cls, model: nn.Module, height: int, width: int) -> ModelCard:
        return cls(
            kind=type(model).__name__,
            architecture=getattr(model, "architecture_string", None),
            weights_sha256=weights_hash(model),
            parameters=sum(p.numel() for p in model.parameters()),
            in_channels=model.config.inp_channels,
            height=height,
            width=width,
        )

    def describe(self) -> str:
        arch = f" {self.architecture}" if self.architecture else ""
        return f"{self.kind}{arch} (weights {self.weights_sha256[:12]}) at {self.height}x{self.width}"


def open_output(out_dir: str | Path, card: ModelCard, force: bool = False) -> dict[str, Any]:
    """The manifest of `out_dir` for `card`: the existing one for the same model and size, else a new one.

    Refuses a folder that holds another model's artifacts (or artifacts without a manifest) unless `force`."""
    out = Path(out_dir)
    path = out / MANIFEST
    manifest = read_manifest(path) if path.is_file() else None
    if manifest is not None and manifest["model"] == asdict(card):
        return manifest
    held = manifest["model"] if manifest else None
    strangers = [p.name for p in out.glob("*") if p.suffix in {".pte", ".onnx", ".tflite", ".bin", ".data"}]
    if (held or strangers) and not force:
        what = ModelCard(**held).describe() if held else f"files {', '.join(sorted(strangers)[:4])} without {MANIFEST}"
        raise CompileError(
            f"{out} already holds another model's artifacts ({what}); this is {card.describe()}. "
            "Choose another --out folder, or pass --force to replace them."
        )
    if force and out.is_dir():
        for name in [*(manifest or {}).get("files", []), *strangers, MANIFEST]:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return {"format": FORMAT, "model": asdict(card), "targets": {}, "files": []}


def read_manifest(path: str | Path) -> dict[str, Any]:
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CompileError(f"{path} is not a readable compile manifest ({err}); delete it or pass --force") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "model" not in manifest:
        raise CompileError(f"{path} is not an edgeens compile manifest (format {FORMAT}); pass --force to replace it")
    return manifest


def record(out_dir: str | Path, manifest: dict[str, Any], target: str, entry: dict[str, Any]) -> None:
    """Store one target's entry and rewrite the manifest atomically (a crash never leaves half a file)."""
    manifest["targets"][target] = entry
    for key in ("file", "files"):
        names = entry.get(key)
        for name in [names] if isinstance(names, str) else names or []:
            if name not in manifest["files"]:
                manifest["files"].append(name)
    write_json(Path(out_dir) / MANIFEST, manifest)


def compare_outputs(reference: Tensor, output: Tensor) -> dict[str, float | None]:
    """Max abs error and PSNR (peak 1, as for images in [0, 1]) between an artifact's output and eager PyTorch's,
    over every element (stage programs return feature maps, not images)."""
    if output.shape != reference.shape:
        raise CompileError(f"the artifact returned shape {tuple(output.shape)}, eager PyTorch {tuple(reference.shape)}")
    difference = output.double() - reference.double()
    max_abs = difference.abs().max().item()
    mse = difference.square().mean().item()
    value = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return {"max_abs_error": max_abs, "psnr_db": None if not math.isfinite(value) else value}


def check_tolerance(target: str, comparison: dict[str, float | None], tolerance: float | None) -> None:
    """A float artifact that drifts from eager PyTorch by more than `tolerance` is an error, never a warning."""
    error = comparison["max_abs_error"]
    if not math.isfinite(error):
        raise CompileError(f"{target}: the artifact produced non-finite values")
    if tolerance is not None and error > tolerance:
        raise CompileError(
            f"{target}: max abs error {error:.3g} against eager PyTorch exceeds the tolerance {tolerance:g}; "
            "the lowering changed the numerics (see compile.json for the operator mix)"
        )


def fixed_input(channels: int, height: int, width: int) -> Tensor:
    """The verification input: a deterministic smooth image plus texture, in [0, 1]."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, height)[:, None] * torch.linspace(0, 1, width)[None, :]
    texture = torch.rand(channels, height, width, generator=generator)
    return (0.6 * ramp + 0.4 * texture).unsqueeze(0)


def tool_versions() -> dict[str, str | int | None]:
    """Versions of everything that shapes a program: Python, the toolchain packages and edgeens's export form."""
    versions: dict[str, str | int | None] = {"python": platform.python_version(), "export_form": EXPORT_FORM_VERSION}
    for name in ("torch", "executorch", "onnx", "onnxruntime", "onnxscript", "qai-hub"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
