"""Build any scheme of the scheme table on any backbone by name, with its ModelSpec attached."""

from __future__ import annotations

from typing import Any

from .resnet import VideoResNet, make_backbone
from .schemes import build_options, get_scheme
from .spec import ModelSpec

SPEC_OPTIONS = {
    "input_size", "resize", "mean", "std", "channel_order", "value_scale",
    "class_names", "mirror_of", "class_kinds",
}


def build_model(
    scheme: str,
    *,
    backbone: str = "resnet18",
    num_classes: int,
    frames: int = 8,
    **options: Any,
) -> VideoResNet:
    """Build `scheme` on `backbone`; options are build options (the scheme table's) or ModelSpec fields."""
    get_scheme(scheme)
    known = build_options()
    unknown = set(options) - known - SPEC_OPTIONS
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)}; build options: {sorted(known)}, "
            f"spec fields: {sorted(SPEC_OPTIONS)}"
        )
    depth = make_backbone(backbone)
    build = {k: v for k, v in options.items() if k in known}
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
