"""Where in time a map puts its mass: the per-frame profile and its spread."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["temporal_profile", "temporal_spread"]


def temporal_profile(attribution_map: np.ndarray) -> np.ndarray:
    """Share of the attribution mass in each frame of a (T, H, W) map (sums to 1; flat if empty)."""
    mass = np.abs(np.asarray(attribution_map, dtype=np.float64)).reshape(attribution_map.shape[0], -1).sum(1)
    total = mass.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(mass.shape, 1.0 / mass.size)
    return mass / total


def temporal_spread(profile: np.ndarray) -> float:
    """Entropy of a per-frame profile over log(T): 1 = all frames used equally, 0 = one frame."""
    p = np.asarray(profile, dtype=np.float64)
    if p.size < 2:
        return 0.0
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(p.size))
