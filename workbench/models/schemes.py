"""The scheme table: one row per way of modelling time, carrying everything that differs per scheme.

A row says what the scheme is (title, paper, what mixes time, its cost), how it is built (a temporal
operator before a 2D block's convs, or a conv builder replacing a 3D block's 3x3 conv; where the
operator sits in a bottleneck; the build options it reads), whether it has gates, and how one of its
blocks routes features between frames (for the diagram). The backbone, `build_model`, the CLI's
choices, the app's pickers, the diagrams and the reports all read this table; a new scheme is one
`register_scheme(Scheme(...))`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .spatiotemporal import (
    ChannelSeparated,
    Conv2Plus1D,
    ConvBuilder,
    GroupedSpatioTemporal,
    SeparableConv3d,
    conv_full3d,
    conv_i3d,
    conv_mixed,
    conv_temporal_pointwise,
)
from .temporal import GateShift, GateShiftFuse, TemporalOp, TemporalShift

# (channels, build options) -> the operator a 2D block applies before its convs
OperatorBuilder = Callable[[int, Mapping[str, Any]], TemporalOp]
# (offset from frame t, route, cell text): where output channels at relative height `position` in
# [0, 1) of a block's channels take their features from; route names: workbench.models.schemes.ROUTES
Route = tuple[int, str, str]
RoutingFn = Callable[[float, Mapping[str, Any]], tuple[Route, ...]]

ROUTES = ("none", "copy", "gated", "kernel", "depthwise")
# build options every scheme accepts (the backbone reads them, workbench.models.resnet); a row adds its own
COMMON_OPTIONS = (
    "temporal_stages", "dropout", "temporal_strides", "inflate", "bn_eps", "pool2",
    "stem_kernel_t", "stem_stride_t", "stem_pool", "stem_pool_stride_t", "stem_mid",
)


@dataclass(frozen=True)
class Scheme:
    """One way of modelling time, as a researcher would describe it, and how to build it."""

    name: str
    title: str
    kind: str  # "2d" (time folded into the batch, a temporal operator per block) or "3d"
    mixes_time: str  # what mixes information over time
    cost: str  # what that costs, in words
    paper: str
    routing: RoutingFn
    operator: OperatorBuilder | None = None  # 2D schemes with a temporal operator
    operator_name: str | None = None  # the operator's submodule name in a block ("shift", "gsm", ...)
    inner: bool = False  # bottleneck: the operator acts after the 3x3 conv (else on the block input)
    conv: ConvBuilder | None = None  # 3D schemes: the kxk conv of a temporal stage's blocks
    reduce_conv: ConvBuilder | None = None  # 3D: a temporal bottleneck's first 1x1 conv, if not 1x1x1
    gated: bool = False  # the operator has GSM gates (gate analyses and interventions apply)
    options: tuple[str, ...] = ()  # build options this scheme reads
    # How far along time one piece of the scheme lets a frame see, in frames each way (the analytic
    # receptive field, `workbench.models.reach`). `operator_reach`: one temporal operator of a 2D
    # scheme (a one-frame shift: 1; GSM: 2, the shift of a gate computed by a 3-tap kernel at the
    # source frame; GSF: 3, GSM's plus its 3-tap fusion conv over time). `conv_reach`: one kxk conv of
    # a 3D scheme's temporal stage, (k_t - 1) / 2 of the builder's temporal kernel (3x3x3, 3x1x1,
    # depthwise 3x3x3, GST's 3x3x3 group: 1). A basic block has two kxk convs, a bottleneck one. The
    # defaults (0) say "adds nothing": right for TSN and for a scheme whose reach lives in its Conv3d
    # kernels alone (the bound reads those from the model); a new row with an operator must set it.
    operator_reach: int = 0
    conv_reach: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("2d", "3d"):
            raise ValueError(f"scheme {self.name!r}: kind must be '2d' or '3d', not {self.kind!r}")
        if self.kind == "3d" and self.conv is None:
            raise ValueError(f"3D scheme {self.name!r} needs a conv builder")
        if (self.operator is None) != (self.operator_name is None):
            raise ValueError(f"scheme {self.name!r}: give both operator and operator_name, or neither")

    @property
    def is_3d(self) -> bool:
        """True when blocks run 3D convolutions on (B, C, T, H, W)."""
        return self.kind == "3d"

    def build_operator(self, channels: int, options: Mapping[str, Any]) -> tuple[str, nn.Module] | None:
        """(submodule name, module) of this scheme's temporal operator for a block, if it has one."""
        if self.operator is None or self.operator_name is None:
            return None
        return self.operator_name, self.operator(channels, options)

    def routes(self, position: float, options: Mapping[str, Any] | None = None) -> tuple[Route, ...]:
        """Where channels at `position` (0..1 of a block's channels) take their features from."""
        found = tuple(self.routing(position, options or {}))
        unknown = [route for _, route, _ in found if route not in ROUTES]
        if unknown:
            raise ValueError(f"scheme {self.name!r} routes by unknown route {unknown[0]!r}; known: {ROUTES}")
        return found


# --- how each scheme's block routes features (read off the operators' definitions) ---------------


def _route_identity(position: float, options: Mapping[str, Any]) -> tuple[Route, ...]:
    return ((0, "copy", "x"),)


def _route_shift(position: float, options: Mapping[str, Any]) -> tuple[Route, ...]:
    fraction = float(options.get("shift_fraction", 1 / 8))
    # TemporalShift: the first fold channels take frame t+1, the next fold frame t-1
    offset = 1 if position < fraction else -1 if position < 2 * fraction else 0
    return ((offset, "copy", "x"),)


def _route_gates(mark: str) -> RoutingFn:
    def routes(position: float, options: Mapping[str, Any]) -> tuple[Route, ...]:
        group = int(position * int(options.get("gate_groups", 2)))
        # temporal.arrive: even groups receive frame t+1, odd groups frame t-1
        offset = 1 if group % 2 == 0 else -1
        return ((0, "gated", f"1-g{mark}"), (offset, "gated", f"g{mark}"))

    return routes


def _route_kernel(route: str, label: str) -> RoutingFn:
    def routes(position: float, options: Mapping[str, Any]) -> tuple[Route, ...]:
        return tuple((offset, route, label) for offset in (-1, 0, 1))

    return routes


def _route_grouped(position: float, options: Mapping[str, Any]) -> tuple[Route, ...]:
    if position < float(options.get("gst_temporal_fraction", 0.5)):
        return tuple((offset, "kernel", "W") for offset in (-1, 0, 1))
    return ((0, "kernel", "Ws"),)


# --- the table ---------------------------------------------------------------------------------------

SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme) -> Scheme:
    """Add (or replace) a row of the table; everything that lists schemes picks it up."""
    SCHEMES[scheme.name] = scheme
    return scheme


def available_schemes() -> list[str]:
    """Registered scheme names, order-blind baseline first."""
    return list(SCHEMES)


def get_scheme(name: str) -> Scheme:
    """The row of `name`; ValueError naming the known schemes otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; choose from {', '.join(SCHEMES)}")
    return SCHEMES[name]


def build_options() -> set[str]:
    """Every build option some registered scheme (or the backbone) reads."""
    return {*COMMON_OPTIONS, *(option for scheme in SCHEMES.values() for option in scheme.options)}


for _row in (
    Scheme("tsn", "TSN", "2d", "nothing: frames are classified alone and averaged",
           "none", "Wang et al., ECCV 2016", _route_identity),
    Scheme("tsm", "Temporal Shift", "2d",
           "a fixed 1/8 of channels shifted one frame back, 1/8 forward, in every block",
           "zero FLOPs, zero parameters (memory moves)", "Lin et al., ICCV 2019", _route_shift,
           operator=lambda channels, o: TemporalShift(channels, o.get("shift_fraction", 1 / 8)),
           operator_name="shift", options=("shift_fraction",), operator_reach=1),
    Scheme("gsm", "Gate-Shift", "2d",
           "learned tanh gates decide per position how much of each channel group moves "
           "to the previous / next frame",
           "one grouped 3x3x3 conv to 2 channels per block (+~0.5% FLOPs)",
           "Sudhakaran et al., CVPR 2020", _route_gates(""),
           operator=lambda channels, o: GateShift(channels, o.get("gate_groups", 2),
                                                  o.get("interleave", False)),
           operator_name="gsm", inner=True, gated=True, options=("gate_groups", "interleave"),
           operator_reach=2),
    Scheme("gsf", "Gate-Shift-Fuse", "2d",
           "GSM's gated shift plus a learned fusion of shifted and kept features",
           "GSM's gate conv + two tiny 3x3 fusion convs per block",
           "Sudhakaran et al., TPAMI 2023", _route_gates("*"),
           operator=lambda channels, o: GateShiftFuse(
               channels, o.get("gate_groups", 2), o.get("gsf_channel_ratio", 100),
               o.get("interleave", False)),
           operator_name="gsf", inner=True, gated=True,
           options=("gate_groups", "gsf_channel_ratio", "interleave"), operator_reach=3),
    Scheme("c3d", "3D conv", "3d", "every 3x3 conv is 3x3x3: space and time in one kernel",
           "3x the parameters and FLOPs of the 3x3 convs", "Tran et al., ICCV 2015 / R3D",
           _route_kernel("kernel", "W"), conv=conv_full3d, conv_reach=1),
    Scheme("r2plus1d", "(2+1)D", "3d",
           "each 3x3x3 factorised into 1x3x3 spatial then 3x1x1 temporal",
           "about the parameters of 3x3x3, an extra nonlinearity", "Tran et al., CVPR 2018",
           _route_kernel("kernel", "Wt"), conv=Conv2Plus1D,
           options=("r2plus1d_mid", "factorised_shortcut"), conv_reach=1),
    Scheme("csn", "Channel-separated", "3d",
           "depthwise 3x3x3 (per channel space-time); channels mix only in 1x1x1 convs",
           "far fewer parameters and FLOPs than 3x3x3", "Tran et al., ICCV 2019",
           _route_kernel("depthwise", "w"), conv=ChannelSeparated, options=("csn_pointwise",),
           conv_reach=1),
    Scheme("gst", "Grouped spatio-temporal", "3d",
           "channels split: one group 3x3x3, the other 1x3x3, concatenated",
           "between 2D and 3D, set by the split", "Luo & Yuille, ICCV 2019", _route_grouped,
           conv=GroupedSpatioTemporal, options=("gst_temporal_fraction",), conv_reach=1),
    Scheme("mc3", "Mixed 3D/2D", "3d",
           "3x3x3 convolutions in the first stage(s) only, 1x3x3 above (time mixed early, then not)",
           "between 2D and 3D: 3x3x3 costs only where the maps are large", "Tran et al., CVPR 2018 (MCx)",
           _route_kernel("kernel", "W"), conv=conv_mixed, options=("mc_stages",), conv_reach=1),
    Scheme("i3d", "Inflated 3D", "3d",
           "inflated blocks mix time in a 3x1x1 first conv (bottleneck) or 3x3x3 (basic block)",
           "3x the parameters of the 1x1 convs it inflates", "Carreira & Zisserman, CVPR 2017",
           _route_kernel("kernel", "Wt"), conv=conv_i3d, reduce_conv=conv_temporal_pointwise, conv_reach=1),
    Scheme("s3d", "Separable 3D", "3d",
           "each 3x3x3 split into 1x3x3 then 3x1x1 at the output width (S3D's separable conv)",
           "about 1/3 to 1/2 of 3x3x3, an extra nonlinearity", "Xie et al., ECCV 2018",
           _route_kernel("kernel", "Wt"), conv=SeparableConv3d, conv_reach=1),
):
    register_scheme(_row)
