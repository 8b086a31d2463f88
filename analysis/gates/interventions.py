"""Gate interventions: force the gates (0, +1, -1) or swap the operator for TSM's shift, and see what
changes, on one clip or over a labelled dataset.

Interventions replace outputs through forward hooks on a private view of the model (`<op>.gate` for
the constant gates), never on the shared model. A gate is per group and position, not per channel,
so TSM's pattern (1/8 of the channels back, 1/8 forward) has no gate equivalent; the "tsm"
intervention instead replaces the whole operator output by TSM's shift of the operator input. In a
basic-block backbone that is exactly the TSM network with the same weights (tested); for GSF it
also bypasses the fusion.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from workbench.datasets import open_dataset
from workbench.models.inference import predict_logits
from workbench.models.memory import Budget, measure_footprint
from workbench.models.temporal import GateShift, TemporalShift
from workbench.progress import Progress

from ..hooks import forward_with
from .capture import gated_ops

__all__ = ["INTERVENTIONS", "INTERVENTION_MEANING", "intervention_accuracy", "intervention_hooks",
    "intervention_table", "run_intervened"]

INTERVENTIONS = ("zero", "plus", "minus", "tsm")
INTERVENTION_MEANING = {
    "none": "the model as trained",
    "zero": "gates forced to 0: nothing moves (the layer acts like TSN)",
    "plus": "gates forced to +1: the whole group moves (frame t gets only its neighbour)",
    "minus": "gates forced to -1: the group moves with a minus sign and 2x is kept (differencing)",
    "tsm": "operator output replaced by TSM's fixed shift of its input (1/8 back, 1/8 forward)",
}


def _constant_gate(value: float):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.full_like(output, value)

    return hook


def _tsm_output(op: GateShift, fraction: float):
    """Hook replacing the whole operator output by TSM's shift of its input (fold = C * fraction)."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        return TemporalShift(x.shape[1], fraction)(x)  # the clip's frame count, from the running model

    return hook


def intervention_hooks(model: nn.Module, layers: list[str], mode: str, tsm_fraction: float = 1 / 8) -> dict:
    """Module name -> replacement hook forcing `mode` on the named gated layers."""
    ops = dict(gated_ops(model))
    unknown = [name for name in layers if name not in ops]
    if unknown:
        raise KeyError(f"no gated layer named {unknown[0]!r}")
    if mode == "tsm":
        return {name: _tsm_output(ops[name], tsm_fraction) for name in layers}
    values = {"zero": 0.0, "plus": 1.0, "minus": -1.0}
    if mode not in values:
        raise ValueError(f"intervention must be one of {INTERVENTIONS}, not {mode!r}")
    return {f"{name}.gate": _constant_gate(values[mode]) for name in layers}


def run_intervened(model: nn.Module, clip: torch.Tensor, layers: list[str], mode: str) -> torch.Tensor:
    """Logits with `mode` forced on `layers`, from a private view of the model (it stays untouched)."""
    return forward_with(model, clip, intervention_hooks(model, layers, mode))


def _targets(model: nn.Module, per_layer: bool) -> list[tuple[str, list[str]]]:
    names = [n for n, _ in gated_ops(model)]
    return [("all layers", names)] + ([(n, [n]) for n in names] if per_layer else [])


def intervention_table(
    model: nn.Module, clip: torch.Tensor, modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True
) -> pd.DataFrame:
    """Prediction change on one clip (batch 0) per target (all layers, each layer) and mode."""
    names = model.spec.class_names
    base = predict_logits(model, clip)[0].softmax(-1)
    top = int(base.argmax())
    rows = [{"target": "none", "mode": "none", "predicted": names[top], "probability": float(base[top]),
             "original_class_probability": float(base[top]), "probability_change": 0.0,
             "prediction_changed": False, "total_variation": 0.0}]
    for target, layers in _targets(model, per_layer):
        for mode in modes:
            prob = run_intervened(model, clip, layers, mode)[0].softmax(-1)
            pred = int(prob.argmax())
            rows.append({
                "target": target, "mode": mode, "predicted": names[pred], "probability": float(prob[pred]),
                "original_class_probability": float(prob[top]),
                "probability_change": float(prob[top] - base[top]),
                "prediction_changed": pred != top,
                "total_variation": float((prob - base).abs().sum() / 2),
            })
    return pd.DataFrame(rows)


def intervention_accuracy(
    model: nn.Module, data: str | Path, modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True,
    max_clips: int | None = None, batch_size: int = 32, progress: Progress | None = None,
    memory: Budget | int | str | None = None,
) -> pd.DataFrame:
    """Accuracy on a labelled dataset per target and mode, against the unmodified model; `batch_size`
    clips per pass at most, fewer when the `memory` budget holds fewer; `progress(done, total)` after
    each pass over the clips."""
    dataset = open_dataset(data).with_spec(model.spec)
    classes = model.spec.class_names
    if list(dataset.classes) != list(classes):
        raise ValueError("dataset classes differ from the model's classes")
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    # decoded once and kept: every target x mode reruns the same clips (max_clips bounds the memory)
    clips, labels = zip(*(dataset[i] for i in range(count)))
    stacked = torch.stack(clips)
    del clips
    footprint = measure_footprint(model, tuple(stacked.shape[-4:]))
    batch_size = Budget.of(memory).batch(footprint, False, batch_size, what="intervention accuracy")
    batches = stacked.split(batch_size)
    truth = torch.tensor(labels)

    def accuracy(layers: list[str], mode: str | None) -> float:
        run = ((lambda b: predict_logits(model, b)) if mode is None
               else (lambda b: run_intervened(model, b, layers, mode)))
        predicted = torch.cat([run(b).argmax(-1) for b in batches])
        return float((predicted == truth).float().mean())

    targets = _targets(model, per_layer)
    total = 1 + len(targets) * len(modes)
    base = accuracy([], None)
    rows = [{"target": "none", "mode": "none", "accuracy": base, "accuracy_change": 0.0, "clips": count}]
    if progress is not None:
        progress(1, total)
    for target, layers in targets:
        for mode in modes:
            acc = accuracy(layers, mode)
            if progress is not None:
                progress(len(rows) + 1, total)
            rows.append({"target": target, "mode": mode, "accuracy": acc, "accuracy_change": acc - base,
                         "clips": count})
    return pd.DataFrame(rows)
