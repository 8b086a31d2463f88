"""Faithfulness of a map: deletion and insertion curves of the class probability, batched passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workbench.models.inference import predict_logits
from workbench.models.memory import Budget, measure_footprint

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
    *,
    memory: Budget | int | str | None = None,
) -> Faithfulness:
    """Deletion/insertion curves of a map; removed values become `baseline` (the mean colour).
    The 2 x (steps + 1) perturbed clips run in as few passes as the `memory` budget allows, each
    batch built just before its pass (at 224 px the whole stack is hundreds of MB)."""
    # built on the CPU; predict_logits moves each batch to the model's device
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
    n = counts.size
    # pass item i: deletion at counts[i] for i < n, insertion at counts[i - n] after
    batch = Budget.of(memory).batch(measure_footprint(model, tuple(clip.shape[1:])), False, 2 * n,
                                    inputs_per_item=2.0, what="deletion/insertion curves")
    base = torch.full_like(clip, baseline)
    probs = []
    for start in range(0, 2 * n, batch):
        items = range(start, min(2 * n, start + batch))
        top = torch.stack([rank < int(counts[i % n]) for i in items])  # (b, T, 1, H, W)
        deleting = torch.tensor([i < n for i in items]).view(-1, 1, 1, 1, 1)
        # deletion: top units -> baseline; insertion: only the top units kept
        perturbed = torch.where(top == deleting, base, clip)
        logits = predict_logits(model, perturbed)
        probs.append(torch.softmax(logits, dim=1)[:, target])
    probs = torch.cat(probs).numpy()
    return Faithfulness(fractions=counts / units, deletion=probs[:n], insertion=probs[n:], unit=unit)
