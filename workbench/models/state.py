"""Strict state-dict matching: what a file's tensors lack, add or shape differently against a model."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """A readable list of missing, unexpected and wrongly shaped keys; None when everything fits."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    return "; ".join(parts) or None


def fill_num_batches_tracked(own: Mapping[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict:
    """Files of old PyTorch versions have no BatchNorm `num_batches_tracked`: take the model's (unused)."""
    if any(k.endswith("num_batches_tracked") for k in state):
        return state
    return {**state, **{k: own[k] for k in own if k.endswith("num_batches_tracked") and k not in state}}


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], problem: str) -> None:
    """load_state_dict(strict=True), raising CheckpointError(`problem` + the mismatch) when keys differ."""
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"{problem}; {mismatch}")
    model.load_state_dict(dict(state), strict=True)
