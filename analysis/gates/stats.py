"""Gate statistics: per layer, group and frame; value histograms; gate maps over the input frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .capture import GateRun, LayerGates, direction

__all__ = ["gate_histogram", "gate_maps", "gate_statistics", "upsample"]


def gate_statistics(run: GateRun) -> pd.DataFrame:
    """Per layer, group and time step: mean, |mean|, shares of positive/negative/near-full gates."""
    rows = []
    for index, layer in enumerate(run.layers):
        g = layer.gates
        for group in range(layer.groups):
            for t in range(g.shape[2]):
                values = g[:, group, t]
                rows.append({
                    "layer": layer.name, "layer_index": index, "group": group,
                    "direction": direction(group), "time": t,
                    "mean": float(values.mean()), "abs_mean": float(values.abs().mean()),
                    "positive_share": float((values > 0).float().mean()),
                    "negative_share": float((values < 0).float().mean()),
                    "saturated_share": float((values.abs() > 0.9).float().mean()),
                    "positions": values.numel(),
                })
    return pd.DataFrame(rows)


def gate_histogram(run: GateRun, bins: int = 20) -> pd.DataFrame:
    """Distribution of gate values per layer and group on fixed bins over [-1, 1]."""
    edges = np.linspace(-1.0, 1.0, bins + 1)
    rows = []
    for layer in run.layers:
        for group in range(layer.groups):
            values = layer.gates[:, group].flatten().numpy()
            counts, _ = np.histogram(np.clip(values, -1.0, 1.0), bins=edges)
            for i, count in enumerate(counts):
                rows.append({
                    "layer": layer.name, "group": group, "direction": direction(group),
                    "bin_left": edges[i], "bin_right": edges[i + 1],
                    "bin_center": (edges[i] + edges[i + 1]) / 2,
                    "count": int(count), "share": float(count / max(1, values.size)),
                })
    return pd.DataFrame(rows)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(..., h, w) -> (..., size, size), bilinear: a feature-resolution map laid over the frames."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(*lead, size, size)


def gate_maps(layer: LayerGates, size: int, batch: int = 0) -> np.ndarray:
    """Gate maps of one clip upsampled to the input size: (G, T, size, size)."""
    return upsample(layer.gates[batch], size).numpy()
