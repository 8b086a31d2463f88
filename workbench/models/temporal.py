"""Temporal operators for 2D (time-folded) schemes: shift (TSM), gate-shift (GSM), gate-shift-fuse (GSF).

All operators take and return folded features (batch*frames, C, H, W); the frame count comes from
the clip the enclosing model runs (`workbench.models.frames`), or `frames=` when called directly, and
is never stored on the operator. Shifts are out-of-place (`torch.cat`), so autograd and Captum work
through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .frames import frames_of
from .fused_gsm import eligible as fused_eligible
from .fused_gsm import fused_forward


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


#: from this many positions per frame on, nine slice additions beat one col2im (measured on CPU)
SLICED_FOLD_POSITIONS = 12 * 12


def _fold_windows(parts: torch.Tensor) -> torch.Tensor:
    n, c, kh, kw, h, w = parts.shape
    if h * w < SLICED_FOLD_POSITIONS and kh * kw > 3:
        return F.fold(parts.reshape(n, c * kh * kw, h * w), (h, w), (kh, kw), padding=(kh // 2, kw // 2))
    out = parts.new_zeros(n, c, h + kh - 1, w + kw - 1)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + h, j : j + w].add_(parts[:, :, i, j])
    return out[:, :, kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


class _FoldWindows(torch.autograd.Function):
    """col2im of (kh, kw) windows, "same" padding; its backward gathers the windows from a padded view."""

    @staticmethod
    def forward(ctx, parts: torch.Tensor) -> torch.Tensor:
        ctx.kernel = parts.shape[2:4]
        return _fold_windows(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        kh, kw = ctx.kernel
        padded = F.pad(grad, (kw // 2, kw // 2, kh // 2, kh // 2))
        return padded.unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 1, 4, 5, 2, 3)


def fold_windows(parts: torch.Tensor) -> torch.Tensor:
    """col2im, "same" padding: (N, C, kh, kw, H, W) -> (N, C, H, W), part (i, j) moved by (i-kh//2, j-kw//2).

    `F.fold` for small frames, slice additions into a fresh padded buffer for large ones (several
    times faster than col2im's loop there) and for a (3, 1) kernel. The backward gathers each
    window from a padded view of the gradient in one strided copy, several times faster than
    im2col (`F.unfold`), and builds no zero-filled gradient per slice as autograd would.
    """
    if torch.is_grad_enabled() and parts.requires_grad:
        return _FoldWindows.apply(parts)
    return _fold_windows(parts)


def arrive(out: torch.Tensor, x6: torch.Tensor, g6: torch.Tensor) -> torch.Tensor:
    """Add, in place, each group's gated x6 one frame back (even groups) or forward (odd groups) to `out`.

    (B, T, G, c, H, W) tensors, gates g6 (B, T, G, 1, H, W). `out` must be a fresh intermediate,
    never a module input: then the in-place slice updates are safe for autograd and save full-size
    copies in every block.
    """
    for g in range(x6.shape[2]):
        if g % 2 == 0:  # frame t receives gate * x from t+1
            out[:, :-1, g].addcmul_(x6[:, 1:, g], g6[:, 1:, g])
        else:  # frame t receives gate * x from t-1
            out[:, 1:, g].addcmul_(x6[:, :-1, g], g6[:, :-1, g])
    return out


def routed(x6: torch.Tensor, g6: torch.Tensor, keep: bool) -> torch.Tensor:
    """The forward of `gated_shift`: kept part (or zeros), then the moved parts added in place."""
    return arrive(torch.addcmul(x6, x6, g6, value=-1) if keep else torch.zeros_like(x6), x6, g6)


class _GatedShift(torch.autograd.Function):
    """GSM's routing (1 - g) * x + (g * x moved one frame), or the moved part alone, with a short backward.

    For group direction d (frame t receives t+d), with the output gradient G moved the other way,
    D = G moved by -d (minus G when the kept part is included): the input gradient is G + g * D
    (g * D for the moved part alone), the gate gradient sum_c x * D. Autograd's own backward of the
    slice updates builds several zero-filled full-size tensors.
    """

    @staticmethod
    def forward(ctx, x6: torch.Tensor, g6: torch.Tensor, keep: bool) -> torch.Tensor:
        ctx.save_for_backward(x6, g6)
        ctx.keep = keep
        return routed(x6, g6, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x6, g6 = ctx.saved_tensors
        # D: where each frame's gated part went, less where it was (if it was kept there)
        moved = -grad if ctx.keep else torch.zeros_like(grad)
        for g in range(x6.shape[2]):
            if g % 2 == 0:  # frame s went to s-1
                moved[:, 1:, g] += grad[:, :-1, g]
            else:  # frame s went to s+1
                moved[:, :-1, g] += grad[:, 1:, g]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.addcmul(grad, g6, moved) if ctx.keep else g6 * moved
        grad_g = (x6 * moved).sum(3, keepdim=True) if ctx.needs_input_grad[1] else None
        return grad_x, grad_g, None


def gated_shift(x6: torch.Tensor, g6: torch.Tensor, keep: bool = True) -> torch.Tensor:
    """Each group's g * x moved one frame (even groups back, odd forward), plus (1 - g) * x if `keep`.

    (B, T, G, c, H, W) features, gates (B, T, G, 1, H, W); out of place.
    """
    if torch.is_grad_enabled() and (x6.requires_grad or g6.requires_grad):
        return _GatedShift.apply(x6, g6, keep)
    return routed(x6, g6, keep)


class TemporalOp(nn.Module):
    """Base of the operators that mix folded frames: analyses find them by this type."""


def temporal_ops(model: nn.Module) -> list[tuple[str, TemporalOp]]:
    """(qualified name, module) of every temporal operator of a model, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, TemporalOp)]


class TemporalShift(TemporalOp):
    """TSM: a fixed fraction of channels moves one frame back, the same fraction forward."""

    def __init__(self, channels: int, shift_fraction: float = 1 / 8) -> None:
        super().__init__()
        self.channels = channels
        self.fold = int(channels * shift_fraction)
        if 2 * self.fold > channels:
            raise ValueError(f"shift_fraction {shift_fraction} moves more than all {channels} channels")

    def forward(self, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        bt, c, h, w = x.shape
        t = frames_of(x, frames)
        x = x.view(bt // t, t, c, h, w)
        fold = self.fold
        back = shift_time(x[:, :, :fold], -1)  # frame t takes t+1
        fwd = shift_time(x[:, :, fold : 2 * fold], 1)  # frame t takes t-1
        out = torch.cat((back, fwd, x[:, :, 2 * fold :]), dim=2)
        return out.view(bt, c, h, w)


class GateConv3d(nn.Module):
    """Grouped 3x3x3 conv to one gate channel per group, computed as one matmul and two col2im folds.

    The parameter keeps the official `conv3D.weight` layout (groups, C/groups, 3, 3, 3). The forward
    contracts the channels first: one batched matmul gives, per group and frame, the 27 kernel taps'
    partial sums at every position (B*T, groups, 27, H*W); a col2im (`fold_windows`) then adds each
    spatial tap at its offset, and two slice additions the temporal taps. Same arithmetic
    as nn.Conv3d with groups on the unfolded clip, several times faster on CPU, where oneDNN runs a
    conv with one output channel per group badly (benchmarks/gsm_module.py measures it). Plain
    out-of-place autograd ops throughout.
    """

    def __init__(self, channels: int, groups: int = 2) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} gate groups")
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(groups, channels // groups, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(groups))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """Folded (B*T, C, H, W) -> (B, groups, T, H, W) pre-activation gates (nn.Conv3d's shape)."""
        bt, c, h, w = x.shape
        g, b = self.groups, bt // frames
        # fold adds partial sum k of a window at offset k - 1 from it; a conv reads input at offset
        # k - 1 into its output: flipping the taps (all three axes) turns one into the other
        weight = self.weight.view(g, c // g, 27).flip(2).transpose(1, 2)  # (g, 27, C/g)
        partial = torch.matmul(weight, x.view(bt, g, c // g, h * w))  # (B*T, g, 27, H*W)
        taps = fold_windows(partial.view(bt, g * 3, 3, 3, h, w))  # (B*T, g*3, H, W)
        taps = taps.unflatten(0, (b, frames)).unflatten(2, (g, 3))  # (B, T, g, kt, H, W)
        # the flipped temporal taps: frame t gets tap 1 of frame t, tap 0 of t+1 and tap 2 of t-1
        logits = taps[:, :, :, 1] + self.bias.view(1, 1, g, 1, 1)  # (B, T, g, H, W), fresh
        logits[:, :-1].add_(taps[:, 1:, :, 0])
        logits[:, 1:].add_(taps[:, :-1, :, 2])
        return logits.transpose(1, 2)  # (B, g, T, H, W) in (B, T, g) memory order: the shift's layout


class GateActivation(nn.Module):
    """tanh of the gate logits (B, groups, T, H, W): the tensor hooks capture."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.tanh(logits)


def interleave_groups(y: torch.Tensor, groups: int) -> torch.Tensor:
    """Official GSM/GSF channel interleave on (B, T, C, H, W): alternate halves within each group."""
    b, t, c, h, w = y.shape
    per = c // groups
    y = y.view(b, t, groups, 2, per // 2, h, w).transpose(3, 4)
    return y.reshape(b, t, c, h, w)


class GateShift(TemporalOp):
    """GSM: BN+ReLU -> grouped 3x3x3 conv -> tanh gates; gated part shifted, remainder kept.

    Group g (of `gate_groups`) shifts backward in time when g is even, forward when odd. Works on
    folded frames throughout (a view as (B, T, C, H, W) costs nothing); BatchNorm over the folded
    batch has BatchNorm3d's statistics and parameter names. The `gate` submodule's output is the
    gate tensor (B, G, T, H, W), so a forward hook can read or replace it.
    """

    def __init__(self, channels: int, gate_groups: int = 2, interleave: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.gate_groups = gate_groups
        self.interleave = interleave
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)  # acts on the fresh BN output only
        self.conv3D = GateConv3d(channels, gate_groups)
        self.gate = GateActivation()

    def gated_input(self, x: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Folded x viewed as (B, T, G, C/G, H, W) and its gates broadcast to (B, T, G, 1, H, W)."""
        gates = self.gate(self.conv3D(self.relu(self.bn(x)), frames))  # (B, G, T, H, W)
        bt, c, h, w = x.shape
        x6 = x.view(bt // frames, frames, self.gate_groups, c // self.gate_groups, h, w)
        return x6, gates.permute(0, 2, 1, 3, 4).unsqueeze(3)

    def route(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """GSM: kept remainder (1 - gate) * x plus the arriving gated part, (B, T, G, C/G, H, W)."""
        return gated_shift(*self.gated_input(x, frames))

    def forward(self, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        t = frames_of(x, frames)
        if type(self).route is GateShift.route and fused_eligible(self, x):
            y = fused_forward(self, x, t)  # opt-in, inference only: same arithmetic, one call
        else:
            y = self.route(x, t)
        if self.interleave:
            y = interleave_groups(y.reshape(x.shape[0] // t, t, *x.shape[1:]), self.gate_groups)
        return y.reshape(x.shape)


class GateShiftFuse(GateShift):
    """GSF: GSM's gated shift, then a learned per-(channel, frame) fusion of shifted and kept parts.

    The fusion weight comes from a 3x3 conv over the (channel, time) plane of the spatially pooled
    shifted and kept features, squashed by a sigmoid; `channel_ratio` (percent) of the channels take
    part, the rest pass through unchanged.
    """

    def __init__(
        self, channels: int, gate_groups: int = 2, channel_ratio: float = 100, interleave: bool = False
    ) -> None:
        active = int(channels * channel_ratio / 100)
        active += active % 2
        super().__init__(active, gate_groups, interleave)
        self.total_channels = channels
        self.fusion = nn.ModuleList(nn.Conv2d(2, 1, 3, padding=1) for _ in range(gate_groups))
        self.fuse_weight = nn.Sigmoid()

    def route(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """GSF: shifted and kept parts mixed with sigmoid weights per channel group and frame."""
        x6, g6 = self.gated_input(x, frames)
        kept = torch.addcmul(x6, x6, g6, value=-1)
        shifted = gated_shift(x6, g6, keep=False)
        out = []
        for g, conv in enumerate(self.fusion):
            s_g, k_g = shifted[:, :, g], kept[:, :, g]  # (B, T, c, H, W)
            # pooled (B, 2, c, T): the fusion conv runs over the channel x time plane
            pooled = torch.stack((s_g.mean(dim=(3, 4)), k_g.mean(dim=(3, 4))), dim=1).transpose(2, 3)
            weight = self.fuse_weight(conv(pooled)).squeeze(1).transpose(1, 2)[..., None, None]
            out.append(k_g + weight * (s_g - k_g))
        return torch.stack(out, dim=2)

    def forward(self, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        if self.channels == self.total_channels:
            return super().forward(x, frames)
        active, rest = x[:, : self.channels], x[:, self.channels :]
        return torch.cat((super().forward(active, frames), rest), dim=1)
