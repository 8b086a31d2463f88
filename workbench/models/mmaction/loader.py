"""Load MMAction2 1.x checkpoints (`{meta, state_dict}`) strictly into our models.

TSN / TSM become our 2D VideoResNet (schemes tsn, tsm), I3D / R(2+1)D / ir-CSN our 3D VideoResNet
(schemes i3d, r2plus1d, csn) with the backbone options the config sets, C3D our own C3D module.
Frames, preprocessing (RGB 0..255, the data preprocessor's mean/std) and the crop come from
`meta.cfg` (its validation pipeline); a file without it needs `frames=` and is assumed to have its
model-zoo config's structure. Recognizer2D's head averages over segments, ours averages frame
logits (the same function: the classifier is linear); Recognizer3D takes one clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from ..release_loading import (
    check_overrides,
    class_names,
    kinetics400_classes,
    load_release_file,
    reload_release,
)
from ..spec import ModelSpec
from .c3d import C3D
from .config import checkpoint_config
from .layouts import C3D_RULES, RESNET_RULES, MMActionLayout, read_layout, release_state

ALLOWED = {"frames", "classes", "class_names", "input_size", "resize", "backbone", "shift_div"}
OWN_MODULES = {"c3d-vgg": lambda spec: C3D(spec.num_classes, spec)}


def _spec(layout: MMActionLayout, settings: dict[str, Any], name: str) -> ModelSpec:
    frames = settings.get("frames", layout.frames)
    if frames is None:
        raise CheckpointError(
            f"cannot load {name!r}: the file ({layout.describe()}) has no meta.cfg to say its number of "
            "frames; "
            "give frames=N (CLI: --model-option frames=N)")
    kinetics = layout.dataset == "kinetics400" and layout.num_classes == 400
    names = class_names(settings.get("classes", settings.get("class_names")), layout.num_classes,
                        kinetics400_classes() if kinetics else [], name)
    options = dict(layout.options)
    if "shift_div" in settings:
        if layout.scheme != "tsm":
            raise CheckpointError(f"cannot load {name!r}: shift_div is for TSM files, "
                                  f"this is {layout.describe()}")
        options["shift_fraction"] = 1 / int(settings["shift_div"])
    return ModelSpec(
        scheme=layout.scheme, backbone=layout.backbone, num_classes=layout.num_classes, frames=int(frames),
        input_size=int(settings.get("input_size", layout.input_size)),
        resize=int(settings.get("resize", layout.resize)), mean=layout.mean, std=layout.std,
        channel_order=layout.channel_order, value_scale=255.0, class_names=names,
        options={**options, "release_entry": "state_dict", "source_name": Path(name).name,
                 "sampling": dict(layout.sampling), "from_config": layout.from_config,
                 "assumed": list(layout.assumed)},
        layout=layout.layout,
    )


def load_mmaction(data: dict, name: str, **overrides: Any) -> nn.Module | None:
    """An MMAction2 checkpoint -> our model in eval mode; None if the file is not one."""
    state = release_state(data)
    if state is None:
        return None
    layout = read_layout(state, checkpoint_config(data, name), name)
    settings = check_overrides(overrides, name, "MMAction2", ALLOWED)
    spec = _spec(layout, settings, name)
    rules = C3D_RULES if layout.backbone in OWN_MODULES else RESNET_RULES
    model = load_release_file(spec, state, rules, OWN_MODULES, settings, name, layout.describe())
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    model.extra = {k: v for k, v in meta.items() if k != "cfg" and isinstance(v, (int, float, str))}
    return model


def reload_mmaction(spec: ModelSpec, state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """An MMAction2 release model written by save_model -> the same model."""
    return reload_release(spec, state, name, OWN_MODULES)


def mmaction_layout(layout: str) -> bool:
    """Does a spec's layout id come from this family?"""
    return layout.startswith("mmaction2-")
