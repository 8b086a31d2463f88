"""How much of an attribution map lies on the object: energy in the mask, area share, pointing game."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Localisation", "localisation"]


@dataclass
class Localisation:
    """How much of a map lies on the object."""

    energy_in_mask: float  # share of the map's mass inside the mask
    area_share: float  # share of the clip's pixels inside the mask: a uniform map's energy_in_mask
    pointing_hit: bool  # the map's maximum lies inside the mask

    @property
    def gain(self) -> float:
        """energy_in_mask / area_share: > 1 means better than a uniform map."""
        return self.energy_in_mask / self.area_share if self.area_share > 0 else float("nan")


def localisation(attribution_map: np.ndarray, mask: np.ndarray) -> Localisation:
    """Energy-in-mask, area share and pointing game of a (T, H, W) map against a bool mask."""
    values = np.abs(np.asarray(attribution_map, dtype=np.float64))
    mask = np.asarray(mask, dtype=bool)
    if values.shape != mask.shape:
        raise ValueError(f"map {values.shape} and mask {mask.shape} differ in shape")
    total = values.sum()
    energy = float(values[mask].sum() / total) if total > 0 else float("nan")
    # ties at the maximum (flat maps): a hit only if every maximal location is on the object
    peak = values == values.max()
    hit = bool(total > 0 and mask[peak].all())
    return Localisation(energy_in_mask=energy, area_share=float(mask.mean()), pointing_hit=hit)
