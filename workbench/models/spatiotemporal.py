"""Conv builders for the 3D schemes: what replaces a block's 3x3 spatial conv.

Each builder takes (in_channels, out_channels, stride, options) and returns a module on
(B, C, T, H, W); the scheme table (`workbench.models.schemes`) says which scheme uses which. Time
is never downsampled, so every scheme sees the same frames to the end. `options["bottleneck"]` is
True for the 3x3 conv inside a bottleneck block, whose own 1x1x1 convs surround it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

ConvBuilder = Callable[[int, int, int, dict[str, Any]], nn.Module]


def conv_spatial(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """1x3x3: an inflated 2D conv, no temporal mixing (used outside temporal stages)."""
    return nn.Conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def conv_full3d(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """3x3x3 (C3D / R3D / I3D style): space and time mixed by one kernel."""
    return nn.Conv3d(cin, cout, 3, (1, stride, stride), 1, bias=False)


class Conv2Plus1D(nn.Sequential):
    """1x3x3 spatial conv, BN+ReLU, then 3x1x1 temporal conv (R(2+1)D), sized to match 3x3x3 params."""

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), 1, (1, 0, 0), bias=False),
        )


class ChannelSeparated(nn.Sequential):
    """ir-CSN style: channel interactions by 1x1x1, space-time by a depthwise 3x3x3.

    In a bottleneck block the block's own 1x1x1 convs carry the interactions, so only the
    depthwise conv is used; a basic block needs the 1x1x1 here (`csn_pointwise`, default on).
    """

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        layers: list[nn.Module] = []
        pointwise = options.get("csn_pointwise", True) and not options.get("bottleneck", False)
        if pointwise or cin != cout:
            layers.append(nn.Conv3d(cin, cout, 1, bias=False))
        layers.append(nn.Conv3d(cout, cout, 3, (1, stride, stride), 1, groups=cout, bias=False))
        super().__init__(*layers)


class GroupedSpatioTemporal(nn.Module):
    """GST: channels split into a 3x3x3 (temporal) group and a 1x3x3 (spatial) group, concatenated."""

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        super().__init__()
        fraction = float(options.get("gst_temporal_fraction", 0.5))
        t_in = max(1, int(round(cin * fraction)))
        t_out = max(1, int(round(cout * fraction)))
        self.split = t_in
        self.temporal = nn.Conv3d(t_in, t_out, 3, (1, stride, stride), 1, bias=False)
        self.spatial = nn.Conv3d(
            cin - t_in, cout - t_out, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.temporal(x[:, : self.split]), self.spatial(x[:, self.split :])), 1)
