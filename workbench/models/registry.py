"""Scheme registry: build any scheme on any backbone by name, with its ModelSpec attached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .resnet import VideoResNet, make_backbone
from .spec import ModelSpec


@dataclass(frozen=True)
class Scheme:
    """One way of modelling time, as a researcher would describe it."""

    name: str
    title: str
    kind: str  # "2d" (time folded into the batch) or "3d"
    mixes_time: str  # what mixes information over time
    cost: str  # what that costs, in words
    paper: str


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("tsn", "TSN", "2d", "nothing: frames are classified alone and averaged",
               "none", "Wang et al., ECCV 2016"),
        Scheme("tsm", "Temporal Shift", "2d",
               "a fixed 1/8 of channels shifted one frame back, 1/8 forward, in every block",
               "zero FLOPs, zero parameters (memory moves)", "Lin et al., ICCV 2019"),
        Scheme("gsm", "Gate-Shift", "2d",
               "learned tanh gates decide per position how much of each channel group moves "
               "to the previous / next frame",
               "one grouped 3x3x3 conv to 2 channels per block (+~0.5% FLOPs)",
               "Sudhakaran et al., CVPR 2020"),
        Scheme("gsf", "Gate-Shift-Fuse", "2d",
               "GSM's gated shift plus a learned fusion of shifted and kept features",
               "GSM's gate conv + two tiny 3x3 fusion convs per block",
               "Sudhakaran et al., TPAMI 2023"),
        Scheme("c3d", "3D conv", "3d", "every 3x3 conv is 3x3x3: space and time in one kernel",
               "3x the parameters and FLOPs of the 3x3 convs", "Tran et al., ICCV 2015 / R3D"),
        Scheme("r2plus1d", "(2+1)D", "3d",
               "each 3x3x3 factorised into 1x3x3 spatial then 3x1x1 temporal",
               "about the parameters of 3x3x3, an extra nonlinearity", "Tran et al., CVPR 2018"),
        Scheme("csn", "Channel-separated", "3d",
               "depthwise 3x3x3 (per channel space-time); channels mix only in 1x1x1 convs",
               "far fewer parameters and FLOPs than 3x3x3", "Tran et al., ICCV 2019"),
        Scheme("gst", "Grouped spatio-temporal", "3d",
               "channels split: one group 3x3x3, the other 1x3x3, concatenated",
               "between 2D and 3D, set by the split", "Luo & Yuille, ICCV 2019"),
    )
}

BUILD_OPTIONS = {
    "temporal_stages", "shift_fraction", "gate_groups", "gsf_channel_ratio",
    "gst_temporal_fraction", "interleave", "dropout", "csn_pointwise",
}
SPEC_OPTIONS = {
    "input_size", "resize", "mean", "std", "channel_order", "value_scale",
    "class_names", "mirror_of", "class_kinds",
}


def available_schemes() -> list[str]:
    """Registered scheme names, order-blind baseline first."""
    return list(SCHEMES)


def build_model(
    scheme: str,
    *,
    backbone: str = "resnet18",
    num_classes: int,
    frames: int = 8,
    **options: Any,
) -> VideoResNet:
    """Build `scheme` on `backbone`; options are build options or ModelSpec fields."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    unknown = set(options) - BUILD_OPTIONS - SPEC_OPTIONS
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)}; build options: {sorted(BUILD_OPTIONS)}, "
            f"spec fields: {sorted(SPEC_OPTIONS)}"
        )
    depth = make_backbone(backbone)
    build = {k: v for k, v in options.items() if k in BUILD_OPTIONS}
    if "temporal_stages" in build:
        build["temporal_stages"] = tuple(int(s) for s in build["temporal_stages"])
    spec_fields = {k: v for k, v in options.items() if k in SPEC_OPTIONS}
    spec_fields.setdefault("input_size", 112 if backbone == "resnet-tiny" else 224)
    model = VideoResNet(
        scheme,
        depth,
        num_classes,
        frames,
        temporal_stages=build.get("temporal_stages", (1, 2, 3, 4)),
        dropout=float(build.get("dropout", 0.0)),
        options=build,
    )
    model.spec = ModelSpec(
        scheme=scheme,
        backbone=backbone,
        num_classes=num_classes,
        frames=frames,
        options={k: list(v) if isinstance(v, tuple) else v for k, v in build.items()},
        **spec_fields,
    )
    return model
