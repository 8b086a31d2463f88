"""What the torchvision and MMAction2 release families share: key renaming, strict loading into a
model built once on the meta device first, class names, overrides, and rebuilding a resaved release.

A release is loaded into one of our models: our VideoResNet (rebuilt by `build_model` from the build
options recorded in its spec, so every analysis, the zoo table and the diagram know it) or a
faithful own module (S3D, C3D). The file's keys are renamed to ours by a table of rules; whatever
does not fit is one CheckpointError naming the file, and no model is returned half-loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .registry import build_model
from .schemes import build_options
from .spec import ModelSpec
from .state import state_mismatch

Rule = tuple[str, str]  # (regex on the file's key, replacement giving our key)
LABELS = Path(__file__).resolve().parents[1] / "assets" / "labels"


def key_map(keys: Sequence[str], rules: Sequence[Rule]) -> dict[str, str]:
    """{file key: our key}: each key rewritten by the first rule that matches it (else kept)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    mapping = {}
    for key in keys:
        mapping[key] = next((p.sub(r, key, count=1) for p, r in compiled if p.match(key)), key)
    return mapping


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Keys without a DataParallel / DDP prefix."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in label order (torchvision's categories = MMAction2's label map)."""
    return (LABELS / "kinetics400.txt").read_text(encoding="utf-8").splitlines()


def with_layout(
    found: tuple[Any, dict[str, torch.Tensor]] | None, detect: Callable[[Any, dict[str, torch.Tensor]], Any]
) -> tuple[Any, dict[str, torch.Tensor], Any] | None:
    """(entry, state, layout) of a file's (entry, state) whose layout `detect` recognises; None when the
    file holds no state of this family or a layout the family does not know."""
    if found is None:
        return None
    entry, state = found
    layout = detect(entry, state)
    return None if layout is None else (entry, state, layout)


def check_overrides(
    overrides: Mapping[str, Any], name: str, family: str, allowed: set[str]
) -> dict[str, Any]:
    """The overrides that were given (None dropped); keys outside `allowed` are a CheckpointError."""
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise CheckpointError(f"cannot load {name!r}: override(s) {bad} not allowed for a {family} file; "
                              f"allowed: {sorted(allowed)}")
    return {k: v for k, v in overrides.items() if v is not None}


def class_names(given: Any, num_classes: int, default: list[str], name: str) -> list[str]:
    """Class names from an override (a list, or a labels file with one name per line), else `default`."""
    if given is None:
        return list(default)
    if isinstance(given, (str, Path)):
        path = Path(given)
        if not path.is_file():
            raise CheckpointError(f"cannot load {name!r}: classes file {str(path)!r} does not exist")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        names = [str(v) for v in given]
    if len(names) != num_classes:
        raise CheckpointError(
            f"cannot load {name!r}: {len(names)} class names given, the file's classifier has {num_classes}")
    return names


def check_geometry(model: nn.Module, frames: int, size: int, name: str, what: str) -> None:
    """Run a model built on the meta device once (no memory, no arithmetic): a clip of `frames` x
    `size` px that the network cannot take (too short for its temporal pools, a fixed-size fc) is a
    CheckpointError before any weight is read."""
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, frames, 3, size, size, device="meta"))
    except (RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot load {name!r}: {what} cannot run on {frames} frames of {size}x{size} px ({reason}); "
            "give other frames=/input_size= or leave them to the file") from None


def load_renamed(
    model: nn.Module, state: Mapping[str, torch.Tensor], rules: Sequence[Rule], name: str, what: str
) -> nn.Module:
    """Strictly load a file's state through the rename rules into a model built on the meta device
    (its tensors become the file's: no initialisation, no copy); a CheckpointError names what does not
    fit with the file's own key names (keys the file lacks by our names)."""
    mapping = key_map(list(state), rules)
    own = model.state_dict()
    ours = {mapping[k]: v for k, v in state.items()}
    if not any(k.endswith("num_batches_tracked") for k in ours):
        # files of old PyTorch versions have none (BatchNorm does not use it at eval)
        ours.update({k: torch.zeros((), dtype=torch.long) for k in own if k.endswith("num_batches_tracked")})
    back = {v: k for k, v in mapping.items()}
    shown = {back.get(k, k): v for k, v in ours.items()}
    mismatch = state_mismatch({back.get(k, k): v for k, v in own.items()}, shown)
    if mismatch or len(set(mapping.values())) != len(mapping):
        raise CheckpointError(f"cannot load {name!r}: weights do not fit {what}; "
                              f"{mismatch or 'two keys of the file map to one parameter'}")
    model.load_state_dict(ours, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise CheckpointError(f"cannot load {name!r}: {what} has tensors the file does not set")
    return model.eval()


def load_release_file(
    spec: ModelSpec, state: Mapping[str, torch.Tensor], rules: Sequence[Rule],
    own_modules: Mapping[str, Callable[[ModelSpec], nn.Module]], settings: Mapping[str, Any], name: str,
    what: str,
) -> nn.Module:
    """A release's model: a told backbone checked against the file's, the architecture checked on the
    meta device for the spec's clip, then the file's tensors loaded strictly through `rules`."""
    if "backbone" in settings and str(settings["backbone"]).lower() != spec.backbone:
        raise CheckpointError(f"cannot load {name!r}: told backbone {settings['backbone']!r}, "
                              f"but the file is {what}")
    model = meta_release(spec, own_modules)
    check_geometry(model, spec.frames, spec.input_size, name, what)
    model = load_renamed(model, state, rules, name, what)
    model.history = []
    model.extra = {}
    return model


def meta_release(spec: ModelSpec, own_modules: Mapping[str, Callable[[ModelSpec], nn.Module]]) -> nn.Module:
    """`build_release` on the meta device: the architecture without memory, to check and to load into."""
    with torch.device("meta"):
        return build_release(spec, own_modules)


def build_release(
    spec: ModelSpec, own_modules: Mapping[str, Callable[[ModelSpec], nn.Module]]
) -> nn.Module:
    """The model of a release spec: an own module by backbone name, else our backbone from the spec's
    build options (what `build_model` needs to build exactly this network)."""
    if spec.backbone in own_modules:
        model = own_modules[spec.backbone](spec)
    else:
        known = build_options()
        options = {k: _tuples(v) for k, v in spec.options.items() if k in known}
        model = build_model(spec.scheme, backbone=spec.backbone, num_classes=spec.num_classes,
                            frames=spec.frames, **options)
    model.spec = spec
    model.frames = spec.frames
    return model


def _tuples(value: Any) -> Any:
    """Lists (a spec read back from a file) as tuples, nested: build options compare as tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def reload_release(
    spec: ModelSpec, state: Mapping[str, torch.Tensor], name: str,
    own_modules: Mapping[str, Callable[[ModelSpec], nn.Module]],
) -> nn.Module:
    """A release model written by save_model (spec + our key names) -> the same model, strictly."""
    try:
        model = meta_release(spec, own_modules)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot load {name!r}: its spec does not build a model ({err})") from None
    return load_renamed(model, state, (), name, f"its recorded layout {spec.layout!r}")
