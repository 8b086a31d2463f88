"""Where each scheme's block takes its features from: a (channel slice x frame offset) routing table.

For 2D schemes the table describes the temporal operator that runs before a block's 2D convs
(TSN: none); for 3D schemes it describes the block's spatio-temporal convolution itself. Each
scheme's row in the scheme table (`workbench.models.schemes`) says how it routes; this module lays
that out on a grid for the diagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.models.schemes import ROUTES, get_scheme

# How an output feature at (channel slice, frame t) depends on a source frame.
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
    row = get_scheme(scheme)
    routes = np.zeros((slices, len(OFFSETS)), dtype=int)
    text = np.full((slices, len(OFFSETS)), "", dtype=object)
    at = {offset: i for i, offset in enumerate(OFFSETS)}
    for slice_index in range(slices):
        middle = (slice_index + 0.5) / slices  # where the slice sits in [0, 1)
        for offset, route, label in row.routes(middle, options):
            if offset in at:
                routes[slice_index, at[offset]] = ROUTES.index(route)
                text[slice_index, at[offset]] = label
    return Routing(scheme, routes, text, _slice_labels(slices))
