"""Recognise an MMAction2 1.x checkpoint and read what it is: from `meta.cfg` where the file has it,
else from its keys and shapes plus the model-zoo config of the backbone type.

An MMAction2 file is `{meta, state_dict}` with `backbone.*` and `cls_head.*` keys. The backbone
type shows in the keys (`conv1a`: C3D; a 2-D `conv1.conv`: ResNet, with `.conv.net.`: ResNetTSM;
`conv_s`/`conv_t`: ResNet2Plus1d; a depthwise `conv2.0.conv`: ResNet3dCSN; else ResNet3d), the
depth in the block counts, the I3D inflation pattern in the `conv1` kernels. Look-alikes (SlowFast's
`slow_path`, other backbones and heads) are refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import CheckpointError
from .backbones import BACKBONES, DEPTHS, BackboneType, Settings, unsupported

HEAD_KEY = "cls_head.fc_cls.weight"
DEFAULT_MEAN = (123.675, 116.28, 103.53)
DEFAULT_STD = (58.395, 57.12, 57.375)
C3D_MEAN = (104.0, 117.0, 128.0)  # configs/_base_/models/c3d_sports1m_pretrained.py


@dataclass
class MMActionLayout:
    """An MMAction2 recognizer as we build it: scheme, backbone, build options, preprocessing, sampling."""

    backbone_type: str
    scheme: str
    backbone: str  # one of our depths, or "c3d-vgg" (an own module)
    num_classes: int
    options: dict[str, Any]
    short: str
    frames: int | None  # None: neither the config nor the layout says (an override must)
    input_size: int
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "RGB"
    sampling: dict[str, Any] = field(default_factory=dict)
    from_config: bool = False
    dataset: str | None = None  # "kinetics400" when the config trains on it
    assumed: list[str] = field(default_factory=list)  # what a file without meta.cfg made us assume

    @property
    def name(self) -> str:
        """e.g. "tsm-resnet50"."""
        return self.short if self.backbone == "c3d-vgg" else f"{self.short}-{self.backbone}"

    @property
    def layout(self) -> str:
        """The id recorded in ModelSpec.layout."""
        return f"mmaction2-{self.name}"

    def describe(self) -> str:
        """A short human description for messages."""
        return (f"an MMAction2 {self.backbone_type} ({self.scheme} on {self.backbone}, "
                f"{self.num_classes} classes)")


def release_state(data: dict) -> dict[str, torch.Tensor] | None:
    """The `state_dict` of an MMAction2 checkpoint (prefix-free), None if the file is not one."""
    state = data.get("state_dict")
    if not (isinstance(state, dict) and state and all(isinstance(k, str) for k in state)):
        return None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("backbone.") for k in state) or not any(k.startswith("cls_head.") for k in state):
        return None
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    return state


def type_from_keys(state: dict[str, torch.Tensor], name: str) -> str:
    """The MMAction2 backbone class whose keys these are; look-alikes are a CheckpointError."""
    keys = set(state)
    if any(k.startswith(("backbone.slow_path.", "backbone.fast_path.")) for k in keys):
        raise CheckpointError(f"cannot load {name!r}: an MMAction2 SlowFast (ResNet3dSlowFast: "
                              "backbone.slow_path, "
                              "backbone.fast_path); its two pathways are no scheme of ours (supported: "
                              f"{', '.join(BACKBONES)})")
    if "backbone.conv1a.conv.weight" in keys:
        return "C3D"
    if "backbone.conv1.conv.conv_s.weight" in keys:
        return "ResNet2Plus1d"
    stem = state.get("backbone.conv1.conv.weight")
    if stem is None or not any(k.startswith("backbone.layer4.") for k in keys):
        first = sorted(k for k in keys if k.startswith("backbone."))[:3]
        raise CheckpointError(f"cannot load {name!r}: an MMAction2 checkpoint whose backbone "
                              f"({', '.join(first)}, "
                              f"...) is none we load (supported: {', '.join(BACKBONES)})")
    if stem.dim() == 4:
        return "ResNetTSM" if any(".conv.net." in k for k in keys) else "ResNet"
    depthwise = state.get("backbone.layer1.0.conv2.0.conv.weight")
    return "ResNet3dCSN" if depthwise is not None and depthwise.shape[1] == 1 else "ResNet3d"


def _depth_from_keys(state: dict[str, torch.Tensor]) -> int:
    """MMAction2 ResNet depth from the block counts (bottleneck when blocks have conv3)."""
    blocks = []
    for stage in (1, 2, 3, 4):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"backbone\.layer{stage}\.(\d+)\.", k))}
        blocks.append(len(found))
    bottleneck = any(".conv3." in k for k in state)
    table = {(False, (2, 2, 2, 2)): 18, (False, (3, 4, 6, 3)): 34, (True, (3, 4, 6, 3)): 50,
             (True, (3, 4, 23, 3)): 101, (True, (3, 8, 36, 3)): 152}
    return table.get((bottleneck, tuple(blocks)), 0)


def _inflation_from_keys(state: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], ...]:
    """I3D's per-block inflation: a 3x1x1 `conv1` (bottleneck) or a 3xkxk one (basic block)."""
    pattern = []
    for stage in (1, 2, 3, 4):
        flags, block = [], 0
        while (weight := state.get(f"backbone.layer{stage}.{block}.conv1.conv.weight")) is not None:
            flags.append(int(weight.dim() == 5 and weight.shape[2] > 1))
            block += 1
        pattern.append(tuple(flags))
    return tuple(pattern)


def _pipeline(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The config's validation pipeline (one centre crop per clip), else its test pipeline."""
    for key in ("val_pipeline", "test_pipeline"):
        if isinstance(config.get(key), list):
            return config[key]
    for key in ("val_dataloader", "test_dataloader"):
        pipeline = ((config.get(key) or {}).get("dataset") or {}).get("pipeline")
        if isinstance(pipeline, list):
            return pipeline
    return []


def _step(pipeline: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((s for s in pipeline if isinstance(s, dict) and s.get("type") == kind), {})


def _dataset(config: dict[str, Any]) -> str | None:
    texts = [v for v in config.values() if isinstance(v, str)]
    return "kinetics400" if any("kinetics400" in t for t in texts) else None


def _settings(kind: BackboneType, given: Settings | None) -> tuple[Settings, list[str]]:
    """The backbone's settings: its class defaults, then the zoo config's (no meta.cfg), then the file's."""
    if given is not None:
        return {**kind.defaults, **given}, []
    assumed = [f"{k}={v!r}" for k, v in kind.zoo.items()]
    return {**kind.defaults, **kind.zoo}, assumed


def read_layout(state: dict[str, torch.Tensor], config: dict[str, Any] | None, name: str) -> MMActionLayout:
    """The layout of an MMAction2 file; CheckpointError naming whatever we cannot build."""
    keyed = type_from_keys(state, name)
    model_cfg: dict[str, Any] = (config or {}).get("model", {})
    backbone_cfg = dict(model_cfg.get("backbone") or {}) if config else None
    backbone_type = str(backbone_cfg.get("type", keyed)) if backbone_cfg is not None else keyed
    if backbone_type not in BACKBONES:
        raise CheckpointError(f"cannot load {name!r}: its meta.cfg builds an MMAction2 {backbone_type}, "
                              "none we load "
                              f"(supported: {', '.join(BACKBONES)})")
    kind = BACKBONES[backbone_type]
    recognizer = str(model_cfg.get("type", kind.recognizer))
    head_cfg = dict(model_cfg.get("cls_head") or {})
    head = str(head_cfg.get("type", kind.heads[0]))
    if recognizer != kind.recognizer or head not in kind.heads:
        raise CheckpointError(f"cannot load {name!r}: an MMAction2 {recognizer} with a {backbone_type} "
                              "backbone and "
                              f"a {head}; we load {kind.recognizer} with {' or '.join(kind.heads)}")
    settings, assumed = _settings(kind, backbone_cfg)
    if backbone_cfg is None:
        settings.update(_shapes(state, backbone_type, assumed))
    bad = unsupported(kind, settings) + _head_problems(head_cfg)
    if bad:
        raise CheckpointError(f"cannot load {name!r}: an MMAction2 {backbone_type} with {', '.join(bad)}, "
                              "which we do not build")
    if HEAD_KEY not in state:
        raise CheckpointError(f"cannot load {name!r}: no {HEAD_KEY} (the recognizer's classifier)")
    num_classes = int(state[HEAD_KEY].shape[0])
    options = kind.options(settings)
    backbone = "c3d-vgg"
    if backbone_type != "C3D":
        depth = int(settings.get("depth") or 0)
        if depth not in DEPTHS:
            raise CheckpointError(f"cannot load {name!r}: an MMAction2 {backbone_type} of depth "
                                  f"{depth or 'unknown'}; "
                                  f"we build depths {', '.join(map(str, DEPTHS))}")
        backbone = DEPTHS[depth]
    pipeline = _pipeline(config or {})
    sample = _step(pipeline, "SampleFrames")
    resize = (_step(pipeline, "Resize").get("scale") or (-1, None))[-1]
    crop = _step(pipeline, "CenterCrop").get("crop_size")
    crop = crop[0] if isinstance(crop, (list, tuple)) else crop
    small = backbone_type == "C3D"
    frames = _frames(kind, settings, sample, small)
    preprocessor = dict(model_cfg.get("data_preprocessor") or {})
    default_mean = C3D_MEAN if small else DEFAULT_MEAN
    default_std = (1.0, 1.0, 1.0) if small else DEFAULT_STD
    if config is None:
        assumed.append("preprocessing and input size of the model zoo's config")
    return MMActionLayout(
        backbone_type=backbone_type, scheme=kind.scheme, backbone=backbone, num_classes=num_classes,
        options=options, short=kind.short, frames=frames,
        input_size=int(crop or (112 if small else 224)), resize=int(resize or (128 if small else 256)),
        mean=tuple(float(m) for m in preprocessor.get("mean", default_mean)),
        std=tuple(float(s) for s in preprocessor.get("std", default_std)),
        channel_order="BGR" if preprocessor.get("to_rgb") else "RGB",
        sampling={k: sample[k] for k in ("clip_len", "frame_interval", "num_clips") if k in sample},
        from_config=config is not None, dataset=_dataset(config or {}), assumed=assumed,
    )


def _shapes(state: dict[str, torch.Tensor], backbone_type: str, assumed: list[str]) -> Settings:
    """What a file without meta.cfg says about its backbone in its shapes: depth, stem kernel, inflation."""
    found: Settings = {}
    if backbone_type == "C3D":
        return found
    found["depth"] = _depth_from_keys(state)
    stem = state.get("backbone.conv1.conv.conv_t.weight", state.get("backbone.conv1.conv.weight"))
    if stem is not None and stem.dim() == 5:
        spatial = state.get("backbone.conv1.conv.conv_s.weight", stem)
        found["conv1_kernel"] = (int(stem.shape[2]), int(spatial.shape[3]), int(spatial.shape[4]))
    if backbone_type == "ResNet3d":
        found["inflate"] = _inflation_from_keys(state)
        assumed.append(f"inflate={found['inflate']!r} (read from the conv1 kernels)")
    return found


def _frames(kind: BackboneType, settings: Settings, sample: dict[str, Any], small: bool) -> int | None:
    """Frames per clip: the TSM shift's segments, a 2D config's clips x clip length, a 3D config's
    clip length; C3D's fc6 fixes 16; otherwise the file does not say."""
    if kind.recognizer == "Recognizer2D" and "num_segments" in kind.defaults and sample:
        return int(settings.get("num_segments", 8))
    if sample:
        clip = int(sample.get("clip_len", 1))
        return clip * int(sample.get("num_clips", 1)) if kind.recognizer == "Recognizer2D" else clip
    return 16 if small else None


def _head_problems(head: dict[str, Any]) -> list[str]:
    """Head settings that change the function at eval time and that we do not build."""
    bad = []
    consensus = head.get("consensus")
    if consensus is not None and (consensus or {}).get("type") != "AvgConsensus":
        bad.append(f"cls_head.consensus={consensus!r}")
    if head.get("temporal_pool"):
        bad.append("cls_head.temporal_pool=True")
    if head.get("spatial_type", "avg") not in ("avg", None):
        bad.append(f"cls_head.spatial_type={head['spatial_type']!r}")
    return bad


# MMAction2 -> our names: ConvModule `convN.conv` + `convN.bn` are our `convN` + `bnN`; a Conv2plus1d's
# `conv_s` / `bn_s` / `conv_t` are our (2+1)D Sequential's 0 / 1 / 3; the TSM shift wraps the conv in
# `.net`; ir-CSN's conv2 is a one-module Sequential; the shortcut is our downsample.0 / .1
_FACTORS = {"conv_s": "0", "bn_s": "1", "conv_t": "3"}
RESNET_RULES: tuple[tuple[str, str], ...] = (
    (r"^cls_head\.fc_cls\.", "fc."),
    *((rf"^backbone\.conv1\.conv\.{part}\.", f"conv1.{index}.") for part, index in _FACTORS.items()),
    (r"^backbone\.conv1\.conv\.", "conv1."),
    (r"^backbone\.conv1\.bn\.", "bn1."),
    *((rf"^backbone\.(layer\d\.\d+)\.downsample\.conv\.{part}\.", rf"\1.downsample.0.{index}.")
      for part, index in _FACTORS.items()),
    (r"^backbone\.(layer\d\.\d+)\.downsample\.conv\.", r"\1.downsample.0."),
    (r"^backbone\.(layer\d\.\d+)\.downsample\.bn\.", r"\1.downsample.1."),
    (r"^backbone\.(layer\d\.\d+)\.conv2\.0\.conv\.", r"\1.conv2.0."),
    (r"^backbone\.(layer\d\.\d+)\.conv2\.0\.bn\.", r"\1.bn2."),
    (r"^backbone\.(layer\d\.\d+)\.conv(\d)\.conv\.net\.", r"\1.conv\2."),
    *((rf"^backbone\.(layer\d\.\d+)\.conv(\d)\.conv\.{part}\.", rf"\1.conv\2.{index}.")
      for part, index in _FACTORS.items()),
    (r"^backbone\.(layer\d\.\d+)\.conv(\d)\.conv\.", r"\1.conv\2."),
    (r"^backbone\.(layer\d\.\d+)\.conv(\d)\.bn\.", r"\1.bn\2."),
)
C3D_RULES: tuple[tuple[str, str], ...] = (
    (r"^cls_head\.fc_cls\.", "fc."),
    (r"^backbone\.(conv\d[ab])\.conv\.", r"\1."),
    (r"^backbone\.(fc[67])\.", r"\1."),
)
