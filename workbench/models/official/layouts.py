"""Recognise which official release a state dict comes from, by its keys alone.

Each release leaves fingerprints: GSM/GSF Inception models use Caffe layer ids
(`conv1_7x7_s2` for BN-Inception, `conv_Conv2D` for InceptionV3), GSM's gates are
`gsm_<layer>.conv3D`, GSF's modules add `channel_conv1/2` (and GSF saves `model_state_dict`),
TSM's shifted blocks show `conv1.net.weight`, MobileNetV2 has `features.`. GSF does not record its
channel ratio: each module's `conv3D.weight` (2, gated/2, 3, 3, 3) says how many channels it gates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

PREFIX = "module."  # torch.nn.DataParallel, which every release trained with


@dataclass
class Layout:
    """What a release file is: family, backbone and what the keys say about its temporal ops."""

    family: str  # "gsm" | "gsf" | "tsm" | "tsn"
    backbone: str  # "bninception" | "inceptionv3" | "resnet50" | "resnet101" | "mobilenetv2"
    num_classes: int
    shifted_blocks: set[str] = field(default_factory=set)  # TSM: "layer1.0", ...
    gated_layers: list[str] = field(default_factory=list)  # GSM/GSF: gate module names under base_model
    gate_channels: dict[str, int] = field(default_factory=dict)  # gate module -> channels it gates

    @property
    def name(self) -> str:
        """Layout id recorded in ModelSpec.layout, e.g. "gsm-bninception"."""
        return f"{self.family}-{self.backbone}"

    def describe(self) -> str:
        """A short human description for error messages."""
        extra = ""
        if self.gated_layers:
            extra = f", {len(self.gated_layers)} gate modules"
        if self.shifted_blocks:
            extra = f", {len(self.shifted_blocks)} shifted blocks"
        return f"a {self.family.upper()} {self.backbone} release with {self.num_classes} classes{extra}"


def release_state(data: dict) -> tuple[str, dict[str, torch.Tensor]] | None:
    """(entry name, state dict without `module.`) of a release checkpoint, or None if not one."""
    for entry in ("state_dict", "model_state_dict"):
        state = data.get(entry)
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            keys = list(state)
            if not all(isinstance(k, str) for k in keys):
                return None
            stripped = {k.removeprefix(PREFIX): v for k, v in state.items()}
            if "new_fc.weight" not in stripped and "base_model.classifier.weight" in stripped:
                # TSM MobileNetV2 trained without dropout keeps its classifier in place; TSM's own
                # test script renames it to new_fc, and so do we
                for part in ("weight", "bias"):
                    stripped[f"new_fc.{part}"] = stripped.pop(f"base_model.classifier.{part}")
            if "new_fc.weight" in stripped and any(k.startswith("base_model.") for k in stripped):
                return entry, stripped
    return None


def _backbone(keys: set[str]) -> str | None:
    if "base_model.conv1_7x7_s2.weight" in keys:
        return "bninception"
    if "base_model.conv_Conv2D.weight" in keys:
        return "inceptionv3"
    if any(k.startswith("base_model.features.") for k in keys):
        return "mobilenetv2"
    if "base_model.conv1.weight" in keys and any(k.startswith("base_model.layer4.") for k in keys):
        blocks = {m.group(1) for k in keys if (m := re.match(r"base_model\.layer3\.(\d+)\.", k))}
        return "resnet101" if len(blocks) >= 23 else "resnet50"
    return None


def detect_layout(entry: str, state: dict[str, torch.Tensor]) -> Layout | None:
    """The release layout of a stripped state dict, or None when it is none we know."""
    keys = set(state)
    backbone = _backbone(keys)
    if backbone is None:
        return None
    num_classes = int(state["new_fc.weight"].shape[0])
    gate_key = re.compile(r"base_model\.(.+)\.conv3D\.weight$")
    gate_channels = {
        m.group(1): int(state[k].shape[0] * state[k].shape[1])
        for k in keys if (m := gate_key.match(k)) and state[k].dim() == 5
    }
    gates = sorted(gate_channels)
    # TSM wraps a shifted block's first conv: ResNet `layerX.Y.conv1.net`, MobileNetV2 `features.N.conv.0.net`
    shift_key = re.compile(
        r"base_model\.(layer\d\.\d+)\.conv1\.net\.|base_model\.(features\.\d+)\.conv\.0\.net\."
    )
    shifted = {m.group(1) or m.group(2) for k in keys if (m := shift_key.match(k))}
    # GSF's training script saves `model_state_dict`, GSM's and TSM's `state_dict`
    fusion = any("fusion" in k or "channel_conv" in k for k in keys)
    if entry == "model_state_dict" or fusion:
        family = "gsf"
    elif gates:
        family = "gsm"
    elif shifted:
        family = "tsm"
    else:
        family = "tsn"
    return Layout(family, backbone, num_classes, shifted, gates, gate_channels)
