"""What each MMAction2 backbone type is in our scheme table, and which of its settings we build.

A row per backbone type: the scheme it is, whether it is 2D (Recognizer2D) or 3D, the class's own
defaults (what a config that does not set a key gets), the settings of its model-zoo config (what
we assume for a file without `meta.cfg`), and the values we can build for settings we do not
generalise (anything else is refused by name). `our_options` turns the settings into our build options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Settings = dict[str, Any]

COMMON_DEFAULTS: Settings = {
    "in_channels": 3, "base_channels": 64, "num_stages": 4, "out_indices": (3,), "style": "pytorch",
    "dilations": (1, 1, 1, 1), "stage_blocks": None,
}
NORMS = ("BN", "BN2d", "BN3d", "SyncBN")  # the same function at eval
RESNET3D_DEFAULTS: Settings = {
    **COMMON_DEFAULTS, "spatial_strides": (1, 2, 2, 2), "temporal_strides": (1, 1, 1, 1),
    "conv1_kernel": (3, 7, 7), "conv1_stride_s": 2, "conv1_stride_t": 1, "pool1_stride_s": 2,
    "pool1_stride_t": 1, "with_pool1": True, "with_pool2": True, "inflate": (1, 1, 1, 1),
    "inflate_style": "3x1x1", "conv_cfg": {"type": "Conv3d"}, "non_local": (0, 0, 0, 0),
    "norm_cfg": {"type": "BN3d"},
}
# settings we build as the values given here only (a list: any of them)
FIXED_COMMON: Settings = {
    "in_channels": [3], "base_channels": [64], "num_stages": [4], "out_indices": [(3,)], "style": ["pytorch"],
    "dilations": [(1, 1, 1, 1)], "stage_blocks": [None],
}
FIXED_3D: Settings = {
    **FIXED_COMMON, "spatial_strides": [(1, 2, 2, 2)], "conv1_stride_s": [2], "pool1_stride_s": [2],
    "with_pool1": [True],
}


@dataclass(frozen=True)
class BackboneType:
    """One MMAction2 backbone class as we build it."""

    scheme: str
    recognizer: str  # "Recognizer2D" | "Recognizer3D"
    short: str  # layout name prefix ("tsm" -> "mmaction2-tsm-resnet50")
    defaults: Settings  # the class's defaults
    zoo: Settings  # its model-zoo config's settings (assumed for a file without meta.cfg)
    fixed: Settings  # settings we build only with these values
    options: Callable[[Settings], dict[str, Any]]  # settings -> our build options
    heads: tuple[str, ...] = ("I3DHead",)
    notes: tuple[str, ...] = field(default_factory=tuple)


def _eps(settings: Settings) -> dict[str, Any]:
    eps = float((settings.get("norm_cfg") or {}).get("eps", 1e-5))
    return {"bn_eps": eps} if eps != 1e-5 else {}


def _stem(settings: Settings) -> dict[str, Any]:
    kernel = tuple(settings["conv1_kernel"])
    return {"stem_kernel_t": int(kernel[0]), "stem_stride_t": int(settings["conv1_stride_t"]),
            "stem_pool_stride_t": int(settings["pool1_stride_t"]),
            "temporal_strides": tuple(int(t) for t in settings["temporal_strides"])}


def _conv2plus1d_mid(cin: int, cout: int, kernel: int) -> int:
    """MMAction2's Conv2plus1d middle width: int(3 k^2 N_in N_out / (k^2 N_in + 3 N_out)), in floats."""
    return int(3 * (cin * cout * kernel * kernel) / (cin * kernel * kernel + 3 * cout))


def _tsm_options(settings: Settings) -> dict[str, Any]:
    return {"shift_fraction": 1 / int(settings["shift_div"]), **_eps(settings)}


def _i3d_options(settings: Settings) -> dict[str, Any]:
    return {**_stem(settings), "pool2": bool(settings["with_pool2"]), "inflate": _nested(settings["inflate"]),
            **_eps(settings)}


def _r2plus1d_options(settings: Settings) -> dict[str, Any]:
    # ResNet2Plus1d's forward never applies ResNet3d's pool2; every conv, the shortcut's too, is a
    # Conv2plus1d, whose inner BN keeps BatchNorm's default eps while the ConvModule BNs take norm_cfg's
    spatial = int(tuple(settings["conv1_kernel"])[1])
    return {**_stem(settings), "stem_mid": _conv2plus1d_mid(3, 64, spatial), "factorised_shortcut": True,
            **_eps(settings)}


def _csn_options(settings: Settings) -> dict[str, Any]:
    return {**_stem(settings), "pool2": bool(settings["with_pool2"]), **_eps(settings)}


def _nested(value: Any) -> Any:
    return tuple(_nested(v) for v in value) if isinstance(value, (list, tuple)) else int(value)


BACKBONES: dict[str, BackboneType] = {
    "ResNet": BackboneType(
        "tsn", "Recognizer2D", "tsn",
        {**COMMON_DEFAULTS, "strides": (1, 2, 2, 2), "norm_cfg": {"type": "BN2d"}},
        {}, {**FIXED_COMMON, "strides": [(1, 2, 2, 2)]}, _eps, heads=("TSNHead", "TSMHead")),
    "ResNetTSM": BackboneType(
        "tsm", "Recognizer2D", "tsm",
        {**COMMON_DEFAULTS, "strides": (1, 2, 2, 2), "num_segments": 8, "is_shift": True, "shift_div": 8,
         "shift_place": "blockres", "temporal_pool": False, "non_local": (0, 0, 0, 0),
         "norm_cfg": {"type": "BN2d"}},
        {}, {**FIXED_COMMON, "strides": [(1, 2, 2, 2)], "is_shift": [True], "shift_place": ["blockres"],
             "temporal_pool": [False], "non_local": [(0, 0, 0, 0)]},
        _tsm_options, heads=("TSMHead", "TSNHead")),
    "ResNet3d": BackboneType(
        "i3d", "Recognizer3D", "i3d", RESNET3D_DEFAULTS,
        # configs/_base_/models/i3d_r50.py (the inflate pattern is read from the kernel shapes)
        {"conv1_stride_t": 2, "pool1_stride_t": 2, "with_pool2": True},
        {**FIXED_3D, "inflate_style": ["3x1x1"], "conv_cfg": [{"type": "Conv3d"}],
         "non_local": [(0, 0, 0, 0)]},
        _i3d_options),
    "ResNet2Plus1d": BackboneType(
        "r2plus1d", "Recognizer3D", "r2plus1d", {**RESNET3D_DEFAULTS, "conv_cfg": {"type": "Conv2plus1d"}},
        # configs/_base_/models/r2plus1d_r34.py
        {"conv1_kernel": (3, 7, 7), "conv1_stride_t": 1, "pool1_stride_t": 1,
         "temporal_strides": (1, 2, 2, 2),
         "norm_cfg": {"type": "SyncBN", "eps": 1e-3}},
        {**FIXED_3D, "conv_cfg": [{"type": "Conv2plus1d"}], "inflate": [(1, 1, 1, 1), 1],
         "non_local": [(0, 0, 0, 0)]},
        _r2plus1d_options),
    "ResNet3dCSN": BackboneType(
        "csn", "Recognizer3D", "ircsn",
        {**RESNET3D_DEFAULTS, "temporal_strides": (1, 2, 2, 2), "inflate_style": "3x3x3",
         "bottleneck_mode": "ir",
         "norm_cfg": {"type": "BN3d", "eps": 1e-3}},
        # configs/_base_/models/ircsn_r152.py
        {"with_pool2": False},
        {**FIXED_3D, "bottleneck_mode": ["ir"], "inflate_style": ["3x3x3"], "inflate": [(1, 1, 1, 1), 1],
         "conv_cfg": [{"type": "Conv3d"}], "non_local": [(0, 0, 0, 0)]},
        _csn_options),
    "C3D": BackboneType(
        "c3d", "Recognizer3D", "c3d", {"norm_cfg": None, "conv_cfg": {"type": "Conv3d"}, "out_dim": 8192,
                                       "style": "pytorch"},
        {}, {"norm_cfg": [None], "conv_cfg": [{"type": "Conv3d"}, None], "out_dim": [8192]}, lambda s: {}),
}
# our backbone names by MMAction2 ResNet depth
DEPTHS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}


def unsupported(kind: BackboneType, settings: Settings) -> list[str]:
    """`key=value` for every setting we cannot build (compared as plain tuples)."""
    bad = []
    norm = settings.get("norm_cfg")
    if norm is not None and norm.get("type") not in NORMS:
        bad.append(f"norm_cfg={norm!r}")
    for key, allowed in kind.fixed.items():
        value = _plain(settings.get(key))
        if value not in [_plain(a) for a in allowed]:
            bad.append(f"{key}={settings.get(key)!r}")
    return bad


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value
