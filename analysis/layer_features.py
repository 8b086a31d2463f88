"""Features of the probe layers (`workbench.models.layers`), per frame or pooled, captured on a private view.

Pooling averages space within each frame, then time; the time average is taken over the frames' values
sorted per channel, so it is exactly invariant to frame order: features whose frames are the same set in
another order (an order-blind layer on a clip and its reverse, run in one batch) pool to bit-identical
vectors, which is what makes the known answers of the probes exact (arrow of time 0.5, TSN's dynamic
score 0) instead of equal up to the rounding of a differently ordered sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from workbench.errors import AnalysisError
from workbench.models.layers import ProbeLayer, probe_layers

from .hooks import capture_forward

T = TypeVar("T")


def evenly_spaced(items: Sequence[T], count: int | None) -> list[T]:
    """`count` of `items` spread evenly over the sequence (all of them when count is None or larger)."""
    if count is None or count >= len(items):
        return list(items)
    picks = np.linspace(0, len(items) - 1, max(count, 0)).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


def frame_features(value: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """A layer's tensor as (batch, time, channels), space averaged; time is 1 where it is pooled away.

    Folded 2D features (B*T, C, h, w) or (B*T, C), 3D ones (B, C, T, h, w), pooled ones (B, C)."""
    if value.dim() == 5:  # (B, C, T, h, w)
        return value.mean(dim=(3, 4)).transpose(1, 2)
    if value.dim() in (2, 4) and value.shape[0] == batch * frames and frames > 1:
        per_frame = value.mean(dim=(2, 3)) if value.dim() == 4 else value
        return per_frame.reshape(batch, frames, -1)
    if value.dim() == 2 and value.shape[0] == batch:
        return value[:, None]
    if value.dim() == 4 and value.shape[0] == batch:  # a pooled 2D map of the whole clip
        return value.mean(dim=(2, 3))[:, None]
    raise AnalysisError(f"cannot read features of shape {tuple(value.shape)} for {batch} clips of {frames} "
                        "frames")


def pool_time(per_frame: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, C): the mean over time of each channel's values taken in sorted order."""
    return per_frame.sort(dim=1).values.mean(dim=1)


def capture_layers(
    model: nn.Module, clips: torch.Tensor, layers: list[ProbeLayer] | None = None
) -> dict[str, torch.Tensor]:
    """Per-frame features (B, T', C) of every probe layer for one no-grad forward of `clips`."""
    layers = layers if layers is not None else probe_layers(model)
    seen, _ = capture_forward(model, clips, names=sorted({layer.module for layer in layers}), inputs=True)
    batch, frames = int(clips.shape[0]), int(clips.shape[1])
    found = {}
    for layer in layers:
        record = seen.inputs if layer.take == "input" else seen.outputs
        if layer.module not in record:
            raise AnalysisError(f"layer {layer.name!r} ({layer.module}) produced no tensor in the forward")
        found[layer.name] = frame_features(record[layer.module].float().cpu(), batch, frames)
    return found


def pooled_layers(
    model: nn.Module, clips: torch.Tensor, layers: list[ProbeLayer] | None = None
) -> dict[str, np.ndarray]:
    """Pooled features (B, C) of every probe layer, float64, for one no-grad forward of `clips`."""
    return {name: pool_time(value).double().numpy()
            for name, value in capture_layers(model, clips, layers).items()}
