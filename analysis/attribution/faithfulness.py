"""Faithfulness of a map: deletion and insertion curves of the class probability, batched passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workbench.models.inference import predict_logits

__all__ = ["Faithfulness", "class_probabilities", "deletion_insertion"]


def class_probabilities(model: nn.Module, clips: torch.Tensor, target: int, batch: int = 32) -> np.ndarray:
    """Softmax probability of `target` for each clip of a (N, T, C, H, W) batch."""
    return torch.softmax(predict_logits(model, clips, batch), dim=1)[:, target].numpy()


@dataclass
class Faithfulness:
    """Deletion and insertion curves: class probability as the most-attributed units go or come."""

    fractions: np.ndarray  # share of units removed (deletion) or restored (insertion)
    deletion: np.ndarray  # target probability after removing the top fraction
    insertion: np.ndarray  # target probability with only the top fraction kept
    unit: str  # "pixel" (a (t, y, x) location, all channels) or "frame"

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve (lower: the map found what matters)."""
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve (higher: the map found what matters)."""
        return float(np.trapezoid(self.insertion, self.fractions))


def _ranked_units(attribution_map: np.ndarray, unit: str) -> tuple[np.ndarray, int]:
    """Unit indices, most attributed first (stable, so ties keep their order), and the unit count."""
    values = np.abs(np.asarray(attribution_map, dtype=np.float64))
    if unit == "frame":
        scores = values.reshape(values.shape[0], -1).sum(1)
    elif unit == "pixel":
        scores = values.reshape(-1)
    else:
        raise ValueError(f"unit must be 'pixel' or 'frame', not {unit!r}")
    return np.argsort(-scores, kind="stable"), scores.size


def deletion_insertion(
    model: nn.Module,
    clip: torch.Tensor,
    attribution_map: np.ndarray,
    target: int,
    steps: int = 16,
    unit: str = "pixel",
    baseline: float = 0.0,
) -> Faithfulness:
    """Deletion/insertion curves of a map; removed values become `baseline` (the mean colour)."""
    # built on the CPU; class_probabilities moves each batch to the model's device
    clip = clip.reshape(1, *clip.shape[-4:]).float().cpu()
    frames, channels, height, width = clip.shape[1:]
    order, units = _ranked_units(attribution_map, unit)
    steps = min(steps, units)
    counts = np.round(np.linspace(0, units, steps + 1)).astype(np.int64)
    # rank[u] = position of unit u in the order: "u is among the top k" is rank[u] < k
    rank = torch.empty(units, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(units)
    if unit == "frame":
        rank = rank.view(frames, 1, 1, 1).expand(frames, 1, height, width)
    else:
        rank = rank.view(frames, 1, height, width)
    top = torch.stack([rank < int(k) for k in counts])  # (steps+1, T, 1, H, W)
    base = torch.full_like(clip, baseline)
    deleted = torch.where(top, base, clip)
    inserted = torch.where(top, clip, base)
    probs = class_probabilities(model, torch.cat([deleted, inserted]), target)
    n = counts.size
    return Faithfulness(fractions=counts / units, deletion=probs[:n], insertion=probs[n:], unit=unit)
