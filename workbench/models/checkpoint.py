"""Saving and loading checkpoints: plain tensors + spec, read with weights_only=True.

`load_model` reads our own format, and the release families of `workbench.models.releases` (the
authors' GSM/GSF/TSM/TSN files, ...) from their keys; a release model saved by `save_model` keeps its
layout in the spec and is rebuilt by its family.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..access import NOT_AVAILABLE, current_policy
from ..errors import CheckpointError
from .registry import build_model
from .releases import family_of_layout, load_release
from .spec import ModelSpec
from .state import load_strict

FORMAT = "gate-shift-workbench"
FORMAT_VERSION = 1
# spec fields a user may change at load time without invalidating the weights
SAFE_OVERRIDES = {"frames", "input_size", "resize", "class_names"}


def save_model(
    model: nn.Module,
    path: str | Path,
    *,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights, spec and optional training history atomically (plain data only)."""
    spec: ModelSpec = model.spec
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        # round-trip through JSON: only plain data, so weights_only=True can always read it back
        "history": json.loads(json.dumps(list(history or []), default=str)),
        "extra": json.loads(json.dumps(dict(extra or {}), default=str)),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, *, unsafe_pickle: bool = False) -> dict[str, Any]:
    """Load a checkpoint file as plain data; refuses code-carrying pickles unless unsafe_pickle."""
    path = Path(path)
    name = str(path)
    if not current_policy().allows(path):  # served: before anything looks at it, the same answer for all
        raise CheckpointError(f"cannot load {name!r}: {NOT_AVAILABLE}")
    if not path.exists():
        raise CheckpointError(f"cannot load {name!r}: no such file")
    if path.is_dir():
        raise CheckpointError(f"cannot load {name!r}: it is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot load {name!r}: file is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except Exception:  # torch raises many types for foreign bytes; all mean "cannot load"
        if not unsafe_pickle and carries_code(path):
            raise CheckpointError(
                f"refusing to load {name!r}: it contains pickled Python objects that could run code "
                "(it needs weights_only=False); load it only if you trust it, with unsafe_pickle=True "
                "(CLI: --unsafe-pickle)"
            ) from None
        # torch's own text ("Weights only load failed ... unpickler ...") speaks of its internals: a
        # sentence about the file instead
        raise CheckpointError(
            f"cannot load {name!r}: not a PyTorch checkpoint, or a damaged one (it cannot be read as one)"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"cannot load {name!r}: expected a dict checkpoint, found {type(data).__name__}"
        )
    return data


def carries_code(path: str | Path) -> bool:
    """True when the file's pickle references Python callables (scanned with pickletools: runs nothing).

    torch's weights_only files reference torch's own rebuild functions too, so only callables
    outside the `torch`/`collections` allow-list count.
    """
    import pickletools
    import zipfile

    def scan(stream: bytes) -> bool:
        pending: list[str] = []
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
                    pending = (pending + [arg])[-2:]
                if opcode.name == "GLOBAL" and isinstance(arg, str):
                    module = arg.split(" ")[0]
                    if not module.startswith(("torch", "collections", "numpy")):
                        return True
                if opcode.name == "STACK_GLOBAL" and pending:
                    module = pending[0]
                    if not module.startswith(("torch", "collections", "numpy")):
                        return True
                if opcode.name in ("INST", "OBJ"):
                    return True
        except Exception:  # not a pickle at all: corrupt, not malicious
            return False
        return False

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(scan(archive.read(n)) for n in archive.namelist() if n.endswith(".pkl"))
        return scan(Path(path).read_bytes())
    except (OSError, zipfile.BadZipFile):
        return False


def load_model(path: str | Path, *, unsafe_pickle: bool = False, **overrides: Any) -> nn.Module:
    """Load a checkpoint into a model in eval mode with `model.spec`; strict key matching."""
    name = str(path)
    data = read_checkpoint(path, unsafe_pickle=unsafe_pickle)
    if data.get("format") != FORMAT:
        model = load_release(data, name, **overrides)  # the release families' layouts
        if model is not None:
            model.source_path = str(path)
            return model.eval()
        keys = ", ".join(sorted(map(str, data))[:8])
        raise CheckpointError(
            f"cannot load {name!r}: not a workbench checkpoint and no known release layout "
            f"(top-level keys: {keys})"
        )
    try:
        spec = ModelSpec.from_dict(dict(data["spec"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"cannot load {name!r}: bad spec ({err})") from None
    bad = set(overrides) - SAFE_OVERRIDES
    if bad:
        raise CheckpointError(
            f"cannot load {name!r}: override(s) {sorted(bad)} not allowed; allowed: {sorted(SAFE_OVERRIDES)}"
        )
    fields = spec.to_dict()
    fields.update(overrides)
    if "class_names" in overrides and len(overrides["class_names"]) != spec.num_classes:
        raise CheckpointError(
            f"cannot load {name!r}: {len(overrides['class_names'])} class names given, "
            f"the model has {spec.num_classes} classes"
        )
    if spec.layout != "workbench":
        # a release model saved by save_model: rebuilt by its family from its keys + spec
        family = family_of_layout(spec.layout)
        if family is None:
            raise CheckpointError(
                f"cannot load {name!r}: its spec names an unknown release layout {spec.layout!r}")
        model = family.reload(ModelSpec.from_dict(fields), data.get("state_dict", {}), name)
    else:
        model = _build_from_fields(fields, name)
        load_strict(model, data.get("state_dict", {}), f"cannot load {name!r}: weights do not fit the model")
    model.history = list(data.get("history", []))
    model.extra = dict(data.get("extra", {}))
    model.source_path = str(path)
    model.eval()
    return model


def _build_from_fields(fields: dict[str, Any], name: str) -> nn.Module:
    """Our own scheme model from a spec's fields (what build_model needs to rebuild it exactly)."""
    fields = dict(fields)
    options = dict(fields.pop("options"))
    fields.pop("layout")
    try:
        return build_model(
            fields.pop("scheme"),
            backbone=fields.pop("backbone"),
            num_classes=fields.pop("num_classes"),
            frames=fields.pop("frames"),
            **options,
            **fields,
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot load {name!r}: its spec does not build a model ({err})") from None
