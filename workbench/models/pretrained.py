"""Initialise our schemes from a torchvision-layout ImageNet ResNet state dict (2D copy, 3D inflation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import read_checkpoint


@dataclass
class TransferReport:
    """Which parameters were copied, inflated over time, or left at their initialisation."""

    copied: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # in the file but not usable (head, shape)
    untouched: list[str] = field(default_factory=list)  # in the model, not in the file

    def summary(self) -> str:
        """One line for logs."""
        return (f"{len(self.copied)} copied, {len(self.inflated)} inflated, "
                f"{len(self.skipped)} skipped, {len(self.untouched)} left at init")


def imagenet_state(source: str | Path | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict from a file (weights_only) or a dict; strips `module.`."""
    data = read_checkpoint(source) if not isinstance(source, dict) else source
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source!r}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_imagenet_weights(
    model: nn.Module, source: str | Path | dict[str, torch.Tensor], *, include_head: bool = False
) -> TransferReport:
    """Copy matching 2D weights; inflate 2D kernels (k, k) to 3D (kt, k, k) by repeating / kt (I3D)."""
    state = imagenet_state(source)
    own = model.state_dict()
    report = TransferReport()
    updates: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own or (key.startswith("fc.") and not include_head):
            report.skipped.append(key)
            continue
        target = own[key]
        if value.shape == target.shape:
            updates[key] = value
            report.copied.append(key)
        elif value.dim() == 4 and target.dim() == 5 and value.shape == target.shape[:2] + target.shape[3:]:
            depth = target.shape[2]
            updates[key] = value.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
            report.inflated.append(key)
        else:
            report.skipped.append(key)
    report.untouched = sorted(set(own) - set(updates))
    if not updates:
        raise CheckpointError(
            "no parameter of the file fits the model: is it a torchvision ResNet of this depth?"
        )
    with torch.no_grad():
        for key, value in updates.items():
            own[key].copy_(value.to(own[key].dtype))
    return report
