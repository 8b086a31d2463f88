"""Temporal operators for 2D (time-folded) schemes: shift (TSM), gate-shift (GSM), gate-shift-fuse (GSF).

All operators take and return folded features (batch*frames, C, H, W). Shifts are out-of-place
(`torch.cat`), so autograd and Captum work through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shift_time(x: torch.Tensor, step: int, dim: int = 1) -> torch.Tensor:
    """Move features `step` frames along `dim` with zero padding (step=-1: frame t gets t+1)."""
    if step == 0:
        return x
    length = x.shape[dim]
    pad_shape = list(x.shape)
    pad_shape[dim] = abs(step)
    pad = x.new_zeros(pad_shape)
    if step > 0:  # forward in time: t receives t-step
        return torch.cat((pad, x.narrow(dim, 0, length - step)), dim=dim)
    return torch.cat((x.narrow(dim, -step, length + step), pad), dim=dim)


def unfold_time(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    return x.view(bt // frames, frames, c, h, w).transpose(1, 2)


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class TemporalOp(nn.Module):
    """Base: an operator that knows how many frames are folded into its batch."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames


class TemporalShift(TemporalOp):
    """TSM: a fixed fraction of channels moves one frame back, the same fraction forward."""

    def __init__(self, channels: int, frames: int, shift_fraction: float = 1 / 8) -> None:
        super().__init__(frames)
        self.channels = channels
        self.fold = int(channels * shift_fraction)
        if 2 * self.fold > channels:
            raise ValueError(f"shift_fraction {shift_fraction} moves more than all {channels} channels")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        x = x.view(bt // self.frames, self.frames, c, h, w)
        fold = self.fold
        back = shift_time(x[:, :, :fold], -1)  # frame t takes t+1
        fwd = shift_time(x[:, :, fold : 2 * fold], 1)  # frame t takes t-1
        out = torch.cat((back, fwd, x[:, :, 2 * fold :]), dim=2)
        return out.view(bt, c, h, w)


class GateConv3d(nn.Module):
    """Grouped 3x3x3 conv to one gate channel per group, computed as per-frame 2D convs.

    The parameter keeps the official `conv3D.weight` layout (groups, C/groups, 3, 3, 3); the forward
    runs one 2D conv giving each group's three temporal taps, then adds the taps shifted in time.
    On this CPU that is ~3.5x faster than nn.Conv3d with groups (see FIELD_NOTES).
    """

    def __init__(self, channels: int, groups: int = 2) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} gate groups")
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(groups, channels // groups, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, groups, T, H, W) pre-activation gates."""
        b, c, t, h, w = x.shape
        g = self.groups
        # (g, C/g, kt, kh, kw) -> (g*kt, C/g, kh, kw): output channel g*3+kt is tap kt of group g
        weight2d = self.weight.permute(0, 2, 1, 3, 4).reshape(g * 3, c // g, 3, 3)
        taps = F.conv2d(fold_time(x), weight2d, padding=1, groups=g)  # (B*T, g*3, H, W)
        taps = taps.view(b, t, g, 3, h, w)
        # a 3D conv output at t sums tap kt applied to frame t+kt-1
        gate = (
            shift_time(taps[:, :, :, 0], 1)
            + taps[:, :, :, 1]
            + shift_time(taps[:, :, :, 2], -1)
        )
        return gate.transpose(1, 2) + self.bias.view(1, g, 1, 1, 1)


def interleave_groups(y: torch.Tensor, groups: int) -> torch.Tensor:
    """Official GSM/GSF channel interleave: within each group, alternate halves of its channels."""
    b, c, t, h, w = y.shape
    per = c // groups
    y = y.view(b, groups, 2, per // 2, t, h, w).transpose(2, 3)
    return y.reshape(b, c, t, h, w)


class GateShift(TemporalOp):
    """GSM: BN+ReLU -> grouped 3x3x3 conv -> tanh gates; gated part shifted, remainder kept.

    Group g (of `gate_groups`) shifts backward in time when g is even, forward when odd.
    The gate tensor is the output of the `gate` submodule (a forward hook sees (B, G, T, H, W)).
    """

    def __init__(
        self, channels: int, frames: int, gate_groups: int = 2, interleave: bool = False
    ) -> None:
        super().__init__(frames)
        self.channels = channels
        self.gate_groups = gate_groups
        self.interleave = interleave
        self.bn = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU()
        self.conv3D = GateConv3d(channels, gate_groups)
        self.gate = nn.Tanh()

    def gated_parts(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Split (B,C,T,H,W) into per-group shifted gated parts and kept remainders."""
        gates = self.gate(self.conv3D(self.relu(self.bn(x))))
        shifted, kept = [], []
        for g, x_group in enumerate(x.chunk(self.gate_groups, dim=1)):
            moved = gates[:, g : g + 1] * x_group
            shifted.append(shift_time(moved, -1 if g % 2 == 0 else 1, dim=2))
            kept.append(x_group - moved)
        return shifted, kept

    def combine(self, shifted: list[torch.Tensor], kept: list[torch.Tensor]) -> torch.Tensor:
        """GSM adds the shifted gated part to the kept remainder."""
        return torch.cat([s + k for s, k in zip(shifted, kept)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x5 = unfold_time(x, self.frames)
        y = self.combine(*self.gated_parts(x5))
        if self.interleave:
            y = interleave_groups(y, self.gate_groups)
        return fold_time(y)


class GateShiftFuse(GateShift):
    """GSF: GSM's gated shift, then a learned per-(channel, frame) fusion of shifted and kept parts.

    The fusion weight comes from a 3x3 conv over the (channel, time) plane of the spatially pooled
    shifted and kept features, squashed by a sigmoid; `channel_ratio` (percent) of the channels take
    part, the rest pass through unchanged.
    """

    def __init__(
        self,
        channels: int,
        frames: int,
        gate_groups: int = 2,
        channel_ratio: float = 100,
        interleave: bool = False,
    ) -> None:
        active = int(channels * channel_ratio / 100)
        active += active % 2
        super().__init__(active, frames, gate_groups, interleave)
        self.total_channels = channels
        self.fusion = nn.ModuleList(
            nn.Conv2d(2, 1, 3, padding=1) for _ in range(gate_groups)
        )
        self.fuse_weight = nn.Sigmoid()

    def combine(self, shifted: list[torch.Tensor], kept: list[torch.Tensor]) -> torch.Tensor:
        """Mix shifted and kept features with sigmoid weights per channel and frame."""
        out = []
        for conv, s, k in zip(self.fusion, shifted, kept):
            pooled = torch.stack((s.mean(dim=(3, 4)), k.mean(dim=(3, 4))), dim=1)  # (B,2,C,T)
            w = self.fuse_weight(conv(pooled)).squeeze(1)[..., None, None]  # (B,C,T,1,1)
            out.append(s * w + k * (1 - w))
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == self.total_channels:
            return super().forward(x)
        active, rest = x[:, : self.channels], x[:, self.channels :]
        return torch.cat((super().forward(active), rest), dim=1)
