"""Do gates follow motion? |gate| against frame differences and, for probe clips, the object mask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .capture import GateRun, LayerGates

__all__ = ["alignment_maps", "frame_difference", "gate_magnitude", "motion_alignment", "pool_to"]


def frame_difference(clip: torch.Tensor) -> torch.Tensor:
    """Motion magnitude per frame (B, T, H, W): mean |x_t - x_t-1| and |x_t+1 - x_t| over channels."""
    diff = (clip[:, 1:] - clip[:, :-1]).abs().mean(dim=2)  # (B, T-1, H, W)
    zero = diff.new_zeros(diff[:, :1].shape)
    before = torch.cat((zero, diff), dim=1)
    after = torch.cat((diff, zero), dim=1)
    count = torch.full((clip.shape[1],), 2.0)
    count[0] = count[-1] = 1.0  # end frames have one neighbour
    return (before + after) / count.view(1, -1, 1, 1)


def pool_to(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., H, W) -> (..., height, width) by area averaging (a mask becomes a coverage fraction)."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.adaptive_avg_pool2d(flat, (height, width)).reshape(*lead, height, width)


def gate_magnitude(layer: LayerGates) -> torch.Tensor:
    """|gate| averaged over groups: (B, T, h, w)."""
    return layer.gates.abs().mean(dim=1)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else float("nan")


def motion_alignment(run: GateRun, clip: torch.Tensor, mask: torch.Tensor | None = None) -> pd.DataFrame:
    """Per layer: correlation of |gate| with frame difference and, with a mask (B or 1, T, H, W),
    the share of gate mass inside the object against the object's area."""
    motion = frame_difference(clip)
    rows = []
    for index, layer in enumerate(run.layers):
        magnitude = gate_magnitude(layer)
        h, w = magnitude.shape[-2:]
        row = {"layer": layer.name, "layer_index": index, "resolution": f"{h}x{w}",
               "motion_correlation": _pearson(magnitude, pool_to(motion, h, w))}
        if mask is not None:
            cover = pool_to(mask.float().expand(magnitude.shape[0], *mask.shape[-3:]), h, w)
            mass = float(magnitude.sum())
            row["gate_in_mask_share"] = float((magnitude * cover).sum()) / mass if mass > 0 else float("nan")
            row["mask_area"] = float(cover.mean())
            area = row["mask_area"]
            row["concentration"] = row["gate_in_mask_share"] / area if area else float("nan")
            row["mask_correlation"] = _pearson(magnitude, cover)
        rows.append(row)
    return pd.DataFrame(rows)


def alignment_maps(
    layer: LayerGates, clip: torch.Tensor, mask: torch.Tensor | None = None, batch: int = 0
) -> dict[str, np.ndarray]:
    """The maps behind one layer's alignment numbers, at its feature resolution: name -> (T, h, w)."""
    magnitude = gate_magnitude(layer)[batch]
    h, w = magnitude.shape[-2:]
    motion = pool_to(frame_difference(clip)[batch], h, w)
    maps = {"|gate|": magnitude.numpy(), "frame difference": motion.numpy()}
    if mask is not None:
        maps["object mask"] = pool_to(mask.float()[min(batch, mask.shape[0] - 1)], h, w).numpy()
    return maps
