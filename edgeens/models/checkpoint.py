"""The one checkpoint loader: official `.pth` files (`{'params': state_dict}`), plain state_dicts and safetensors,
always with `weights_only=True`; and strict loading whose errors say what is wrong and what would fit."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from edgeens.errors import EdgeensError

# Wrappers that official and common training code put around the state_dict, in the order they are tried.
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model", "net_g")


class CheckpointError(EdgeensError):
    """A checkpoint that cannot be loaded, with the reason and the fix in the message."""


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state_dict from `.pth`/`.pt` (weights_only) or `.safetensors`, unwrapping `params` and friends."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); download or save it again")
    if _is_safetensors(path):
        try:
            obj: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            kind = _kind_of(path)
            if kind:  # another kind of file under a .safetensors name: say what it is, not "truncated"
                raise CheckpointError(
                    f"{path} is {kind}, not safetensors weights (only its name says .safetensors); give the "
                    ".pth / .pt / .safetensors weights file"
                ) from None
            raise CheckpointError(
                f"checkpoint {path} is not a readable safetensors file ({err}); it may be truncated: "
                "download or save it again"
            ) from None
    else:
        obj = _torch_load(path)
    return _unwrap(obj, path)


KNOWN_FILES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"\x08": "an ONNX model",
    b"{": "a JSON file",
}


def safetensors_format(path: str | Path) -> str:
    """The `format` entry of a safetensors file's metadata ("" for none, for another kind of file, or unreadable):
    how edgeens' own files (hybrids) are told apart from plain checkpoints before loading them."""
    from safetensors import safe_open

    if Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return ""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format", "")
    except Exception:  # not readable as safetensors: load_state_dict says what is wrong with it
        return ""


def _kind_of(path: Path) -> str | None:
    """What a file that is no checkpoint is, by its first bytes (None: not one edgeens recognises)."""
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:6] == b"ET":
        return "an ExecuTorch program (.pte)"
    if head.startswith(b"PK"):
        return "a zip archive (a torch.save .pth file)"
    return next((name for magic, name in KNOWN_FILES.items() if head.startswith(magic)), None)


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as f:  # safetensors starts with an 8-byte header length, then '{"'
        head = f.read(10)
    return len(head) == 10 and head[8:10] == b'{"'


def _torch_load(path: Path) -> Any:
    with path.open("rb") as f:
        head = f.read(12)
    # torch.save writes a zip archive (or, before 1.6, a pickle: protocol byte 0x80 first); anything else is some
    # other kind of file, which torch.load would call "objects besides tensors" or fail on with a KeyError.
    if head[:2] != b"PK" and head[:1] != b"\x80":
        kind = _kind_of(path)
        raise CheckpointError(
            f"{path} is not a checkpoint: neither a torch.save file nor safetensors"
            + (f" but {kind}" if kind else f" (it starts with {head[:4]!r})")
            + "; give the .pth / .pt / .safetensors weights file"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} contains Python objects besides tensors, and edgeens only loads weights "
            f"(weights_only=True, so a checkpoint cannot run code). Re-save just the weights: "
            f"torch.save(model.state_dict(), path). Detail: {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} could not be read as a torch file ({str(err).splitlines()[0]}); it is probably "
            "truncated or not a checkpoint: download or save it again"
        ) from None


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"checkpoint {path} is not a state_dict (found {type(obj).__name__}); expected a dict of tensors, "
            f"optionally under one of the keys {', '.join(WRAPPER_KEYS)}"
        )
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"checkpoint {path} is not a state_dict: {len(not_tensors)} entries are not tensors "
            f"(e.g. {not_tensors[:3]}); expected a dict of tensors, optionally under one of {', '.join(WRAPPER_KEYS)}"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def require(state: Mapping[str, Tensor], key: str, source: str, arch: str) -> Tensor:
    """state[key], or a CheckpointError saying the checkpoint is not this architecture."""
    if key not in state:
        sample = ", ".join(sorted(state)[:4])
        raise CheckpointError(
            f"{source} is not a {arch} checkpoint: it has no '{key}' (its keys start with: {sample}, ...)"
        )
    return state[key]


def count_blocks(state: Mapping[str, Tensor], stage: str) -> int:
    """Number of blocks `<stage>.<i>.…` in a state_dict."""
    return len({k.split(".")[1] for k in state if k.startswith(stage + ".") and k.split(".")[1].isdigit()})


def group_keys(keys: list[str]) -> list[str]:
    """Summarise keys by module: 'encoder_level1.3.* (12 keys)' instead of twelve lines."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        parts = key.split(".")
        prefix = ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
        groups[prefix].append(key)
    return [
        (members[0] if len(members) == 1 else f"{prefix}.* ({len(members)} keys)") for prefix, members in groups.items()
    ]


def load_strict(model: nn.Module, state: Mapping[str, Tensor], source: str, config: dict[str, Any] | None) -> None:
    """`model.load_state_dict(state, strict=True)` with an explanatory error: missing and unexpected keys
    grouped by module, shape mismatches, and the configuration that the checkpoint itself describes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        model.load_state_dict(state, strict=True)
        return
    lines = [f"{source} does not fit {type(model).__name__}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): " + "; ".join(group_keys(missing)))
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): " + "; ".join(group_keys(unexpected)))
    if shapes:
        lines.append(
            f"  shape mismatches ({len(shapes)}): " + "; ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else "")
        )
    if config is not None:
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        lines.append(
            f"  the checkpoint describes {type(model).__name__}({args}); "
            "edgeens commands build that model from the file itself (in Python: "
            f"{type(model).__name__}.from_checkpoint(path))"
        )
    raise CheckpointError("\n".join(lines))


def weights_hash(model: nn.Module) -> str:
    """SHA-256 of a model's weights (names, shapes and bytes): identifies a teacher for its pool, a model for its
    compiled artifacts."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
