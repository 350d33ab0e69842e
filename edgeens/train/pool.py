"""The block pool on disk: `pool/<stage>-<token>.safetensors` per distilled surrogate and `pool/manifest.json`
(format, the teacher's weights hash, every family's block kind and knobs, one entry per surrogate with its file and
alignment), plus the per-rank fragments of an unfinished distillation. Written by `edgeens.train.distill`, read by
the search, fine-tuning, compile and profile through `load_pool`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from edgeens.files import format_name, lock_holder, upgrade_format
from edgeens.models.checkpoint import CheckpointError, weights_hash
from edgeens.models.restormer import Restormer
from edgeens.models.space import Family, SearchSpace, Stage, families_from_dict, families_to_dict, legacy_families
from edgeens.models.surrogates import build_surrogate


def _families_named(manifest: dict) -> dict:
    """Version 1 to 2: the manifest names its families and every surrogate its token; a version-1 manifest
    without them holds MambaIR surrogates (at its `surrogate_config`), named by depth."""
    if "families" not in manifest:
        manifest["families"] = families_to_dict(legacy_families(manifest.pop("surrogate_config", None)))
    for entry in manifest["surrogates"].values():
        entry.setdefault("token", f"M{entry['depth']}")
    return manifest


UPGRADES = (_families_named,)
POOL_FORMAT = format_name("pool", UPGRADES)


class PoolError(CheckpointError):
    """A block pool that is missing, damaged, made for another teacher, or lacks surrogates a space needs."""


def surrogate_name(stage: Stage, token: str) -> str:
    return f"{stage.name}-{token}"


class BlockPool(dict):
    """The distilled surrogates keyed by (stage name, token), with the search space their families span."""

    def __init__(self, space: SearchSpace, modules: dict[tuple[str, str], nn.Module]) -> None:
        super().__init__(modules)
        self.space = space


def pool_families(manifest: dict) -> tuple[Family, ...]:
    """The families a manifest declares."""
    return families_from_dict(manifest["families"])


def read_manifest(pool_dir: Path) -> dict | None:
    """manifest.json merged with the per-rank fragments of an unfinished (or sharded) run."""
    paths = [pool_dir / "manifest.json", *sorted(pool_dir.glob("manifest.rank*.json"))]
    merged: dict | None = None
    for path in paths:
        if path.is_file():
            part = _read_json(path)
            if merged is None:
                merged = part
            else:  # a fragment is newer: it may declare families the manifest does not have yet
                merged["surrogates"].update(part["surrogates"])
                merged["families"] = {**merged.get("families", {}), **part.get("families", {})}
    return merged


def _read_json(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    damaged = PoolError(
        f"{path} is damaged (not a pool manifest); delete it and run edgeens distill with the same --out again "
        "(the surrogates are distilled again)"
    )
    if not isinstance(manifest, dict) or not isinstance(manifest.get("surrogates"), dict):
        raise damaged
    try:
        upgraded = upgrade_format(manifest, "pool", UPGRADES, path)
    except (KeyError, TypeError, AttributeError):
        raise damaged from None
    if upgraded is None:
        raise PoolError(f"{path}: unknown pool format {manifest.get('format')!r}")
    return upgraded


def intact(pool_dir: Path, entry: dict) -> bool:
    """Whether a finished surrogate's weights file is there and readable (a deleted or truncated file is not)."""
    from safetensors import safe_open

    try:
        with safe_open(str(pool_dir / entry["file"]), "pt") as f:
            return len(list(f.keys())) > 0
    except Exception:  # safetensors raises several types for missing, truncated and garbage files
        return False


def load_pool(pool_dir: str | Path, teacher: Restormer) -> BlockPool:
    """The distilled surrogates of `pool_dir`, keyed by (stage name, token), checked against `teacher`; the
    pool's `space` spans the families its manifest declares."""
    pool_dir = Path(pool_dir)
    manifest_path = pool_dir / "manifest.json"
    if not manifest_path.is_file():
        holder = lock_holder(pool_dir)
        if holder:
            raise CheckpointError(
                f"{pool_dir} is being distilled now ({holder}) and has no manifest.json yet; wait for it to finish"
            )
        raise CheckpointError(f"{pool_dir} is not a block pool (no manifest.json); run `edgeens distill` first")
    manifest = _read_json(manifest_path)
    if manifest["teacher_hash"] != weights_hash(teacher):
        raise CheckpointError(
            f"{manifest_path} was built for another teacher (hash {manifest['teacher_hash'][:12]}...); distil a "
            "pool for this teacher, or load the teacher the pool was built from"
        )
    space = SearchSpace(teacher.config, pool_families(manifest))
    stages = {s.name: s for s in space.stages}
    modules: dict[tuple[str, str], nn.Module] = {}
    for entry in manifest["surrogates"].values():
        token = entry["token"]
        module = build_surrogate(stages[entry["stage"]], token, space.family(token[0]))
        if not intact(pool_dir, entry):
            raise CheckpointError(
                f"{pool_dir / entry['file']} is missing or unreadable; run edgeens distill with the same --out "
                "again: it distils the missing surrogates and keeps the others"
            )
        module.load_state_dict(load_file(pool_dir / entry["file"]), strict=True)
        modules[(entry["stage"], token)] = module.eval()
    return BlockPool(space, modules)


def check_pool(space: SearchSpace, pool: Mapping[tuple[str, str], nn.Module]) -> None:
    """Refuse a pool that lacks a surrogate some architecture of `space` needs."""
    missing = [f"{stage.name}--{token}" for stage, token in space.surrogates() if (stage.name, token) not in pool]
    if missing:
        raise PoolError(
            f"the block pool lacks {len(missing)} surrogate(s) the search space needs: {', '.join(missing)}; "
            "distil them first (edgeens distill with this teacher)"
        )


def space_for(teacher: Restormer, pool_dir: Path | None, families: str | None) -> tuple[BlockPool | None, SearchSpace]:
    """The space that stage programs are built and timed for: a pool's (with its surrogates), or the teacher's
    stages with `families` (default M,S,G) when there is no pool."""
    from edgeens.models.space import DEFAULT_FAMILIES, parse_families

    if pool_dir is None:
        return None, SearchSpace(teacher.config, parse_families(families or DEFAULT_FAMILIES))
    if families is not None:
        raise PoolError("--families comes from the pool's manifest when --pool is given; drop one of them")
    surrogates = load_pool(pool_dir, teacher)
    return surrogates, surrogates.space


def compose_hybrid(teacher_path: Path, pool_dir: Path | None, architecture: str | None) -> nn.Module:
    """The hybrid `architecture` composed from a teacher checkpoint and its pool (for compile and profile)."""
    from edgeens.models.hybrid import HybridUNet

    if not architecture:
        raise PoolError("--teacher composes a hybrid: add --arch (e.g. R-M2-M4-R-M6-R-M2-R) and --pool")
    if pool_dir is None:
        raise PoolError("--teacher --arch needs the block pool the surrogates come from: --pool runs/<name>/pool")
    teacher = Restormer.from_checkpoint(teacher_path)
    return HybridUNet.from_teacher(teacher, architecture, load_pool(pool_dir, teacher)).eval()


def pool_families_named(space: SearchSpace, letters: str) -> tuple[Family, ...]:
    """The pool's families named in `letters` (`M,G`), refusing one the pool does not hold."""
    from edgeens.models.space import ArchitectureError

    chosen = [letter.strip().upper() for letter in letters.split(",") if letter.strip()]
    held = [f.letter for f in space.families]
    unknown = [letter for letter in chosen if letter not in held]
    if unknown or not chosen:
        raise ArchitectureError(
            f"the pool holds families {', '.join(held)}, not {', '.join(unknown) or 'none'}; distil them first "
            f"(edgeens distill --families ...) or search only families the pool holds (e.g. --families {held[0]})"
        )
    return tuple(space.family(letter) for letter in chosen)
