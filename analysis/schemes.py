"""Where each scheme's block takes its features from: a (channel slice x frame offset) routing table.

For 2D schemes the table describes the temporal operator that runs before a block's 2D convs
(TSN: none); for 3D schemes it describes the block's spatio-temporal convolution itself. The
tables are read off the operators' definitions (workbench.models.temporal / spatiotemporal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.models import SCHEMES

# How an output feature at (channel slice, frame t) depends on a source frame.
ROUTES = ("none", "copy", "gated", "kernel", "depthwise")
ROUTE_MEANING = {
    "none": "nothing from this frame",
    "copy": "copied unchanged (identity or a fixed shift)",
    "gated": "a learned, input-dependent gate decides how much",
    "kernel": "learned kernel tap that mixes all channels",
    "depthwise": "learned kernel tap on the channel's own values only",
}
ROUTE_LEGEND = {  # short forms for a legend
    "none": "nothing",
    "copy": "copied",
    "gated": "gated (learned, per input)",
    "kernel": "kernel tap (all channels)",
    "depthwise": "kernel tap (own channel)",
}
OFFSETS = (-2, -1, 0, 1, 2)


@dataclass
class Routing:
    """A scheme's routing table: route index and a short cell text per (slice, offset)."""

    scheme: str
    routes: np.ndarray  # int (slices, len(OFFSETS)), index into ROUTES
    text: np.ndarray  # str (slices, len(OFFSETS))
    slice_labels: list[str]


def _slice_labels(slices: int) -> list[str]:
    return [f"C {i}/{slices}-{i + 1}/{slices}" for i in range(slices)]


def scheme_routing(scheme: str, slices: int = 8, options: dict[str, Any] | None = None) -> Routing:
    """The routing table of one block of `scheme`, channels cut into `slices` equal slices."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    options = options or {}
    routes = np.zeros((slices, len(OFFSETS)), dtype=int)
    text = np.full((slices, len(OFFSETS)), "", dtype=object)
    at = {offset: i for i, offset in enumerate(OFFSETS)}
    middles = (np.arange(slices) + 0.5) / slices  # where each slice sits in [0, 1)

    def put(row: int, offset: int, route: str, label: str) -> None:
        routes[row, at[offset]] = ROUTES.index(route)
        text[row, at[offset]] = label

    for row, middle in enumerate(middles):
        if scheme == "tsn":
            put(row, 0, "copy", "x")
        elif scheme == "tsm":
            fraction = float(options.get("shift_fraction", 1 / 8))
            offset = 1 if middle < fraction else -1 if middle < 2 * fraction else 0
            put(row, offset, "copy", "x")
        elif scheme in ("gsm", "gsf"):
            groups = int(options.get("gate_groups", 2))
            group = int(middle * groups)
            # GateShift.arrive: even groups receive frame t+1, odd groups frame t-1
            offset = 1 if group % 2 == 0 else -1
            mark = "*" if scheme == "gsf" else ""  # GSF: both parts then mixed by a learned fusion weight
            put(row, 0, "gated", f"1-g{mark}")
            put(row, offset, "gated", f"g{mark}")
        elif scheme in ("c3d", "r2plus1d"):
            for offset in (-1, 0, 1):
                put(row, offset, "kernel", "W" if scheme == "c3d" else "Wt")
        elif scheme == "csn":
            for offset in (-1, 0, 1):
                put(row, offset, "depthwise", "w")
        elif scheme == "gst":
            fraction = float(options.get("gst_temporal_fraction", 0.5))
            for offset in (-1, 0, 1) if middle < fraction else (0,):
                put(row, offset, "kernel", "W" if middle < fraction else "Ws")
    return Routing(scheme, routes, text, _slice_labels(slices))
