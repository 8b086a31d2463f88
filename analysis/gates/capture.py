"""Capture the gates of every GSM/GSF operator on a clip: one forward of a private view of the model.

Gate tensors are the output of each gated operator's `.gate` submodule: (B, G, T, h, w), tanh
values in [-1, 1]. Group g shifts backward in time when g is even (frame t receives gate * x from
t+1) and forward when g is odd (frame t receives gate * x from t-1); see
`workbench.models.temporal.GateShift`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.models.schemes import SCHEMES
from workbench.models.temporal import GateShift, GateShiftFuse

from ..hooks import capture_forward

__all__ = ["GateRun", "LayerGates", "capture_gates", "direction", "gated_ops"]


def direction(group: int) -> str:
    """Which way a gate group moves features (even groups backward, odd forward)."""
    return "backward (t gets t+1)" if group % 2 == 0 else "forward (t gets t-1)"


@dataclass
class LayerGates:
    """One gated operator's captured tensors for one clip batch."""

    name: str
    kind: str  # "gsm" | "gsf"
    gates: torch.Tensor  # (B, G, T, h, w) in [-1, 1]
    before: torch.Tensor  # operator input, gated channels only: (B, T, C, h, w)
    # operator output, same channels (B, T, C, h, w); after GSF's fusion, and in the interleaved
    # channel order when the operator was built with interleave=True
    after: torch.Tensor

    @property
    def groups(self) -> int:
        """Number of gate groups."""
        return self.gates.shape[1]


@dataclass
class GateRun:
    """Gates of every gated operator on one clip batch, with the model's logits."""

    layers: list[LayerGates]
    logits: torch.Tensor  # (B, classes)

    def layer(self, name: str) -> LayerGates:
        """The captured layer with this qualified name."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no gated layer named {name!r}")


def gated_ops(model: nn.Module) -> list[tuple[str, GateShift]]:
    """(name, module) of every GSM/GSF operator in forward order; ValueError when there is none."""
    ops = [(n, m) for n, m in model.named_modules() if isinstance(m, GateShift)]
    if not ops:
        scheme = getattr(getattr(model, "spec", None), "scheme", type(model).__name__)
        gated = ", ".join(s.name for s in SCHEMES.values() if s.gated)
        raise ValueError(f"{scheme} model has no gates (gate analyses need a model of a gated scheme: "
                         f"{gated})")
    return ops


def _unfold(x: torch.Tensor, frames: int) -> torch.Tensor:
    return x.reshape(x.shape[0] // frames, frames, *x.shape[1:])


def capture_gates(model: nn.Module, clip: torch.Tensor) -> GateRun:
    """Run `clip` (B, T, 3, H, W) once and capture gates, inputs and outputs of each gated op."""
    ops = gated_ops(model)
    names = [n for n, _ in ops] + [f"{n}.gate" for n, _ in ops]
    seen, logits = capture_forward(model, clip, names, inputs=True)
    frames = clip.shape[1]
    layers = []
    for name, op in ops:
        active = op.channels  # GSF may gate only part of its input channels
        # analyses of the captured tensors run on the CPU, wherever the model ran
        before = _unfold(seen.inputs[name], frames)[:, :, :active].cpu()
        after = _unfold(seen.outputs[name], frames)[:, :, :active].cpu()
        kind = "gsf" if isinstance(op, GateShiftFuse) else "gsm"
        layers.append(LayerGates(name, kind, seen.outputs[f"{name}.gate"].cpu(), before, after))
    return GateRun(layers, logits)
