"""Load torchvision video-model state dicts (`torchvision.models.video.*`) strictly into our models.

R3D / MC3 / R(2+1)D become our VideoResNet (schemes c3d, mc3, r2plus1d on resnet18 with
torchvision's stem and temporal strides), S3D our own S3D module. The spec carries torchvision's
preset for these weights: RGB 0..1, Kinetics mean/std, resize then centre crop (112 px from 128 for
the ResNets, 224 from 256 for S3D), 16 frames, Kinetics-400 class names for 400-class heads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..release_loading import (
    check_overrides,
    class_names,
    kinetics400_classes,
    load_release_file,
    reload_release,
    strip_prefix,
    with_layout,
)
from ..spec import ModelSpec
from .layouts import S3D_RULES, TorchvisionLayout, detect_layout, resnet_rules
from .s3d import S3D

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# (input size, resize) of torchvision's VideoClassification preset per backbone; torchvision resizes
# to a fixed (128, 171) / (256, 256), we resize the short side (the same on 4:3 video for the ResNets)
PRESETS = {"s3d-inception": (224, 256)}
RESNET_PRESET = (112, 128)
FRAMES = 16  # torchvision's weights were measured with clip_len=16 at frame_rate=15
SAMPLING = {"clip_len": FRAMES, "frame_rate": 15}
ALLOWED = {"frames", "classes", "class_names", "input_size", "resize", "backbone"}
OWN_MODULES = {"s3d-inception": lambda spec: S3D(spec.num_classes, spec)}


def plain_state(data: dict) -> tuple[str | None, dict[str, torch.Tensor]] | None:
    """(entry, state) of a plain state dict (or one under `model` / `state_dict`), prefix-free."""
    candidates: list[tuple[str | None, Any]] = [(None, data), ("model", data.get("model")),
                                                ("state_dict", data.get("state_dict"))]
    for entry, state in candidates:
        if isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                     for k, v in state.items()):
            return entry, strip_prefix(state)
    return None


def _spec(layout: TorchvisionLayout, settings: dict[str, Any], entry: str | None, name: str) -> ModelSpec:
    size, resize = PRESETS.get(layout.backbone, RESNET_PRESET)
    default_names = kinetics400_classes() if layout.num_classes == 400 else []
    names = class_names(settings.get("classes", settings.get("class_names")), layout.num_classes,
                        default_names, name)
    return ModelSpec(
        scheme=layout.scheme, backbone=layout.backbone, num_classes=layout.num_classes,
        frames=int(settings.get("frames", FRAMES)), input_size=int(settings.get("input_size", size)),
        resize=int(settings.get("resize", resize)), mean=KINETICS_MEAN, std=KINETICS_STD,
        channel_order="RGB", value_scale=1.0, class_names=names,
        options={**layout.options, "release_entry": entry, "source_name": Path(name).name,
                 "sampling": dict(SAMPLING)},
        layout=layout.layout,
    )


def load_torchvision(data: dict, name: str, **overrides: Any) -> nn.Module | None:
    """A torchvision video state dict -> our model in eval mode; None if the file is not one."""
    found = with_layout(plain_state(data), lambda entry, state: detect_layout(state, name))
    if found is None:
        return None
    entry, state, layout = found
    settings = check_overrides(overrides, name, "torchvision", ALLOWED)
    spec = _spec(layout, settings, entry, name)
    rules = S3D_RULES if layout.backbone in OWN_MODULES else resnet_rules("stem_mid" in layout.options)
    return load_release_file(spec, state, rules, OWN_MODULES, settings, name, layout.describe())


def reload_torchvision(spec: ModelSpec, state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """A torchvision release model written by save_model -> the same model."""
    return reload_release(spec, state, name, OWN_MODULES)


def torchvision_layout(layout: str) -> bool:
    """Does a spec's layout id come from this family?"""
    return layout.startswith("torchvision-")
