"""GSM and GSF written literally as the papers describe them, on the unfolded clip (B, C, T, H, W).

BatchNorm3d, ReLU, a grouped 3x3x3 `nn.Conv3d` to one gate per channel group, tanh; each group's
gated part moves one frame (even groups to the previous frame, odd groups to the next) with zero
padding, its remainder stays; GSF mixes the moved and kept parts with sigmoid weights from a 3x3
conv over the (channel, time) plane of their spatial means. No shortcut of ours is used: this is
the yardstick `workbench.models.temporal.GateShift` / `GateShiftFuse` are checked against
(tests/test_gsm_reference.py) and timed against (benchmarks/gsm_module.py). Parameter names and
shapes equal ours, so the reference loads our modules' state dicts strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv3dGateShift(nn.Module):
    """Reference GSM (`fuse=False`) or GSF (`fuse=True`) on the first `channels` of the input channels."""

    def __init__(
        self, channels: int, gate_groups: int = 2, interleave: bool = False, fuse: bool = False
    ) -> None:
        super().__init__()
        self.channels = channels
        self.gate_groups = gate_groups
        self.interleave = interleave
        self.bn = nn.BatchNorm3d(channels)
        self.conv3D = nn.Conv3d(channels, gate_groups, 3, padding=1, groups=gate_groups)
        convs = (nn.Conv2d(2, 1, 3, padding=1) for _ in range(gate_groups))
        self.fusion = nn.ModuleList(convs) if fuse else None

    @classmethod
    def like(cls, op: nn.Module) -> Conv3dGateShift:
        """A reference with `op`'s configuration and weights (GateShift or GateShiftFuse)."""
        ref = cls(op.channels, op.gate_groups, op.interleave, fuse=hasattr(op, "fusion"))
        ref.load_state_dict(op.state_dict(), strict=True)
        return ref.to(next(op.parameters())).train(op.training)

    @staticmethod
    def moved_in_time(y: torch.Tensor, later: bool) -> torch.Tensor:
        """(B, c, T, H, W): frame t receives frame t+1 (`later`) or t-1, zeros where nothing arrives."""
        zeros = torch.zeros_like(y[:, :, :1])
        return torch.cat((y[:, :, 1:], zeros), 2) if later else torch.cat((zeros, y[:, :, :-1]), 2)

    def forward(self, folded: torch.Tensor, frames: int) -> torch.Tensor:
        bt, total, h, w = folded.shape
        b, c, groups = bt // frames, self.channels, self.gate_groups
        clip = folded[:, :c].reshape(b, frames, c, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
        gates = torch.tanh(self.conv3D(F.relu(self.bn(clip))))  # (B, G, T, H, W)
        per = c // groups
        parts = []
        for g in range(groups):
            x_g = clip[:, g * per : (g + 1) * per]
            gated = gates[:, g : g + 1] * x_g
            kept = x_g - gated
            moved = self.moved_in_time(gated, later=g % 2 == 0)
            if self.fusion is None:
                y = moved + kept
            else:
                pooled = torch.stack((moved.mean(dim=(3, 4)), kept.mean(dim=(3, 4))), dim=1)  # (B, 2, c, T)
                weight = torch.sigmoid(self.fusion[g](pooled))[:, 0, :, :, None, None]  # (B, c, T, 1, 1)
                y = moved * weight + kept * (1 - weight)
            if self.interleave:  # the releases alternate the two halves of each group channel by channel
                y = y.reshape(b, 2, per // 2, frames, h, w).transpose(1, 2).reshape(b, per, frames, h, w)
            parts.append(y)
        out = torch.cat(parts, 1).permute(0, 2, 1, 3, 4).reshape(bt, c, h, w)
        return torch.cat((out, folded[:, c:]), 1) if c < total else out
