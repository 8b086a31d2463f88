"""Load the authors' GSM / TSM / TSN release checkpoints strictly into our own implementations.

`load_official(data, name, **overrides)` takes what `read_checkpoint` returned (weights_only, CPU),
recognises the release from its keys, builds the matching model with the release's parameter
names, loads it strictly and fills `model.spec` with the release's preprocessing. What a file
cannot say (frames, class names) comes from overrides, then from the file name where the release
encodes it (`..._segment8_...`, TSM's `..._shift8_blockres_...`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...access import NOT_AVAILABLE, current_policy
from ...errors import CheckpointError
from ..release_loading import check_geometry, check_overrides, with_layout
from ..spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from ..state import fill_num_batches_tracked, state_mismatch
from ..views import meta_view
from .bninception import FEATURE_DIM as BNINCEPTION_DIM
from .bninception import BNInception
from .gsf import ReleaseGSF
from .inceptionv3 import FEATURE_DIM as INCEPTIONV3_DIM
from .inceptionv3 import InceptionV3
from .layouts import Layout, detect_layout, release_state
from .mobilenetv2 import FEATURE_DIM as MOBILENET_DIM
from .mobilenetv2 import OfficialMobileNetV2
from .official_resnet import FEATURE_DIM as RESNET_DIM
from .official_resnet import OfficialResNet
from .video_model import OfficialVideoModel

ALLOWED_OVERRIDES = {"frames", "classes", "class_names", "backbone", "shift_div", "input_size", "resize"}
# user spellings of backbones -> our layout names
BACKBONE_ALIASES = {
    "bninception": "bninception", "bn-inception": "bninception", "bn_inception": "bninception",
    "inceptionv3": "inceptionv3", "inception-v3": "inceptionv3", "inception_v3": "inceptionv3",
    "resnet50": "resnet50", "resnet101": "resnet101", "mobilenetv2": "mobilenetv2",
}
# the Inception releases were trained on Caffe-converted ImageNet weights: BGR, 0-255, mean only
CAFFE_MEAN = (104.0, 117.0, 128.0)
INPUT_SIZES = {"bninception": 224, "inceptionv3": 229}  # 229 (not 299) is what the GSM code uses
# backbone -> the families whose releases use it
SUPPORTED: dict[str, tuple[str, ...]] = {
    "bninception": ("gsm", "gsf", "tsn"), "inceptionv3": ("gsm", "gsf", "tsn"),
    "resnet50": ("tsm", "tsn", "gsf"), "resnet101": ("tsm", "tsn", "gsf"), "mobilenetv2": ("tsm", "tsn"),
}


def official_layouts() -> set[str]:
    """Every layout id (`ModelSpec.layout`) an official release loads as, e.g. "gsm-bninception"."""
    return {f"{family}-{backbone}" for backbone, families in SUPPORTED.items() for family in families}


def _norm_backbone(value: str) -> str:
    key = str(value).strip().lower()
    if key not in BACKBONE_ALIASES:
        raise CheckpointError(
            f"unknown backbone {value!r}; choose from {', '.join(sorted(set(BACKBONE_ALIASES.values())))}"
        )
    return BACKBONE_ALIASES[key]


def _from_file_name(name: str) -> dict[str, Any]:
    """Settings a release encodes in its file name (frames, TSM shift division)."""
    base = Path(name).name
    found: dict[str, Any] = {}
    if m := re.search(r"segment(\d+)", base):
        found["frames"] = int(m.group(1))
    if m := re.search(r"shift(\d+)", base):
        found["shift_div"] = int(m.group(1))
    return found


def _class_names(value: Any, num_classes: int, name: str) -> list[str]:
    """Class names from a list or a labels file (one per line)."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not current_policy().allows(path):  # served: the file is not read, nor said to exist
            raise CheckpointError(f"cannot load {name!r}: classes file: {NOT_AVAILABLE}")
        if not path.is_file():
            raise CheckpointError(f"cannot load {name!r}: classes file {str(path)!r} does not exist")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        names = [str(v) for v in value]
    if len(names) != num_classes:
        raise CheckpointError(
            f"cannot load {name!r}: {len(names)} class names given, the file's classifier has {num_classes}"
        )
    return names


def _build_backbone(layout: Layout, backbone: str, shift_div: int) -> tuple[nn.Module, int]:
    if layout.family not in SUPPORTED.get(backbone, ()):
        supported = "; ".join(f"{'/'.join(f.upper() for f in fams)} {b}" for b, fams in SUPPORTED.items())
        raise CheckpointError(
            f"{layout.family.upper()} on {backbone} is recognised but not supported yet "
            f"(supported: {supported})"
        )
    temporal = {"gsm": "gsm", "gsf": "gsf"}.get(layout.family, "none")
    if backbone == "bninception":
        return BNInception(temporal, layout.gate_channels), BNINCEPTION_DIM
    if backbone == "inceptionv3":
        return InceptionV3(temporal, layout.gate_channels), INCEPTIONV3_DIM
    if backbone == "mobilenetv2":
        return OfficialMobileNetV2(layout.shifted_blocks, shift_div), MOBILENET_DIM
    # GSF's ResNet modules are `layerX.Y.gsf`; the block name is what the backbone needs
    gsf = {k.removesuffix(".gsf"): v for k, v in layout.gate_channels.items()}
    return OfficialResNet(backbone, layout.shifted_blocks, shift_div, gsf), RESNET_DIM


def _release_spec(layout: Layout, backbone: str, frames: int, classes: list[str],
                  options: dict[str, Any], overrides: dict[str, Any]) -> ModelSpec:
    if backbone in INPUT_SIZES:
        size = int(overrides.get("input_size", INPUT_SIZES[backbone]))
        norm: dict[str, Any] = dict(
            mean=CAFFE_MEAN, std=(1.0, 1.0, 1.0), channel_order="BGR", value_scale=255.0
        )
    else:
        size = int(overrides.get("input_size", 224))
        norm = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB", value_scale=1.0)
    # the releases' test crop: scale the short side to size*256/224, centre-crop size
    resize = int(overrides.get("resize", size * 256 // 224))
    return ModelSpec(
        scheme=layout.family, backbone=backbone, num_classes=layout.num_classes, frames=frames,
        input_size=size, resize=resize, class_names=classes, options=options,
        layout=f"{layout.family}-{backbone}", **norm,
    )


def _strict_state(model: nn.Module, state: dict[str, torch.Tensor], name: str, layout: Layout,
                  backbone: str) -> dict[str, torch.Tensor]:
    """The file's state, checked key by key; only absent num_batches_tracked (old PyTorch) is filled."""
    own = model.state_dict()
    state = fill_num_batches_tracked(own, state)
    mismatch = state_mismatch(own, state)
    if mismatch:
        raise CheckpointError(
            f"cannot load {name!r}: weights do not fit a {layout.family.upper()} {backbone} model; "
            f"{mismatch}. The file looks like {layout.describe()}."
        )
    return state


def _plain(value: Any) -> Any:
    """Scalars of the release's bookkeeping (GSM stores best_prec1 as a 0-d tensor), else None."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value if isinstance(value, (int, float, str)) else None


def load_official(data: dict, name: str, **overrides: Any) -> nn.Module | None:
    """A release checkpoint (read with weights_only) -> our model in eval mode; None if not a release."""
    found = with_layout(release_state(data), detect_layout)
    if found is None:
        return None
    entry, state, layout = found
    # explicit overrides beat the file name, which beats nothing
    settings = {**_from_file_name(name), **check_overrides(overrides, name, "release", ALLOWED_OVERRIDES)}
    backbone = layout.backbone
    if "backbone" in settings:
        backbone = _norm_backbone(settings["backbone"])
    if "frames" not in settings:
        raise CheckpointError(
            f"cannot load {name!r}: the file ({layout.describe()}) does not record its number of "
            "frames; give frames=N (CLI: --model-option frames=N), or keep the release's file name, "
            "which says it (..._segmentN_...)"
        )
    frames = int(settings["frames"])
    shift_div = int(settings.get("shift_div", 8))
    raw_classes = settings.get("classes", settings.get("class_names"))
    classes = _class_names(raw_classes, layout.num_classes, name) if raw_classes is not None else []
    try:
        base, feature_dim = _build_backbone(layout, backbone, shift_div)
    except CheckpointError as err:
        if backbone != layout.backbone:
            raise CheckpointError(
                f"cannot load {name!r}: told backbone {backbone!r}, "
                f"but the file looks like {layout.describe()}"
            ) from None
        raise CheckpointError(f"cannot load {name!r}: {err}") from None
    options: dict[str, Any] = {"release_entry": entry, "source_name": Path(name).name}
    if layout.family == "tsm":
        options.update(shift_div=shift_div, shifted_blocks=sorted(layout.shifted_blocks))
    spec = _release_spec(layout, backbone, frames, classes, options, overrides)
    model = OfficialVideoModel(base, feature_dim, layout.num_classes, spec)
    if layout.family == "gsf":
        # not recorded in the file: read back from the gate shapes (percent of each layer gated)
        ratios = sorted({round(m.channel_ratio, 2) for m in model.modules() if isinstance(m, ReleaseGSF)})
        options["gsf_channel_ratio"] = ratios[0] if len(ratios) == 1 else ratios
    state = _strict_state(model, state, name, layout, backbone)
    # a clip size the network cannot take (BN-Inception's fixed 7x7 pool below 224 px) is refused here,
    # not by the first analysis
    check_geometry(meta_view(model), frames, spec.input_size, name, layout.describe())
    model.load_state_dict(state, strict=True)
    model.source_path = str(name)
    model.history = []
    model.extra = {k: _plain(v) for k, v in data.items() if k != entry and _plain(v) is not None}
    model.eval()
    return model


def load_resaved(spec: ModelSpec, state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """A release model written by save_model (spec + prefix-free keys) -> the same model, strictly."""
    layout = detect_layout(str(spec.options.get("release_entry", "state_dict")), state)
    if layout is None or layout.name != spec.layout:
        found = layout.describe() if layout is not None else "no release layout"
        raise CheckpointError(
            f"cannot load {name!r}: its spec says layout {spec.layout!r}, but its weights look like {found}"
        )
    shift_div = int(spec.options.get("shift_div", 8))
    try:
        base, feature_dim = _build_backbone(layout, spec.backbone, shift_div)
    except CheckpointError as err:
        raise CheckpointError(f"cannot load {name!r}: {err}") from None
    model = OfficialVideoModel(base, feature_dim, layout.num_classes, spec)
    model.load_state_dict(_strict_state(model, state, name, layout, spec.backbone), strict=True)
    model.eval()
    return model
