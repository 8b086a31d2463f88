"""Temporal receptive field: how strongly each input frame moves the features of an output frame, by layer.

For a clip of T frames, layer l and output frame i, the influence of input frame j is the Frobenius norm
of the Jacobian block d f_l[i] / d x[j], estimated without bias from random projections: the mean over
`probes` Gaussian vectors v of |d <v, f_l[i]> / d x[j]|^2, square-rooted. The influence at an offset
d = j - i is its mean over the output frames i that have a frame at i + d; each layer's influences are
then normalised to sum to 1 over the offsets, and averaged over clips. Next to it stands the analytic
bound of `workbench.models.reach`.

The zeros are structural and exact: each output frame gets its own copy of the clip in one batch, the
view runs in eval mode (BatchNorm uses its running statistics, nothing mixes the batch), so the gradient
of copy i's frame reaches only the frames it depends on, and those it does not depend on receive
exactly 0.0 (sums of products with zero). No two differently batched computations are compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.device import model_device
from workbench.errors import AnalysisError
from workbench.models.layers import ProbeLayer, probe_layers
from workbench.models.reach import layer_bounds
from workbench.models.views import private_view

from .layer_features import evenly_spaced

COLUMNS = ["model", "layer", "offset", "influence", "bound"]


def _frame_of_copy(value: torch.Tensor, copies: int, frames: int, first: int) -> torch.Tensor | None:
    """Copy c's features at frame first + c, (copies, C, ...); None when the tensor has no time axis."""
    index = torch.arange(copies)
    if value.dim() == 5 and value.shape[2] == frames:  # (B, C, T, h, w)
        return value[index, :, first + index]
    if value.dim() in (2, 4) and value.shape[0] == copies * frames:  # folded 2D
        return value.view(copies, frames, *value.shape[1:])[index, first + index]
    return None


def frame_influence(
    model: nn.Module, clip: torch.Tensor, layers: Sequence[ProbeLayer], probes: int = 4, seed: int = 0,
    chunk: int = 8,
) -> dict[str, np.ndarray]:
    """Influence matrices (output frame i, input frame j) of every layer with a time axis, for one clip
    (1, T, 3, H, W); layers whose features have no frame axis (pooled logits) are left out."""
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise AnalysisError(f"expected one clip (1, T, 3, H, W), got {tuple(clip.shape)}")
    view = private_view(model)  # hooks stay on the view; eval mode: no batch statistics
    frames = int(clip.shape[1])
    device = model_device(view)
    generator = torch.Generator().manual_seed(seed)
    squared: dict[str, torch.Tensor] = {}
    seen: dict[str, torch.Tensor] = {}
    modules = dict(view.named_modules())

    def keep(layer: ProbeLayer):  # noqa: ANN202 - a forward hook
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            seen[layer.name] = args[0] if layer.take == "input" else output
        return hook

    handles = [modules[layer.module].register_forward_hook(keep(layer)) for layer in layers]
    try:
        for first in range(0, frames, chunk):
            copies = min(chunk, frames - first)
            inputs = clip.to(device).repeat(copies, 1, 1, 1, 1).requires_grad_(True)
            seen.clear()
            view(inputs)
            for layer in layers:
                picked = _frame_of_copy(seen[layer.name], copies, frames, first)
                if picked is None:
                    continue
                total = squared.setdefault(layer.name, torch.zeros(frames, frames, dtype=torch.float64))
                for _ in range(probes):
                    direction = torch.randn(picked.shape, generator=generator).to(picked)
                    (grad,) = torch.autograd.grad((picked * direction).sum(), inputs, retain_graph=True)
                    total[first : first + copies] += grad.double().pow(2).sum(dim=(2, 3, 4)).cpu()
            seen.clear()
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / probes).sqrt().numpy() for name, total in squared.items()}


def by_offset(matrix: np.ndarray) -> np.ndarray:
    """Mean influence at each offset j - i in [-(T-1), T-1] of an (output frame, input frame) matrix."""
    frames = matrix.shape[0]
    return np.array([np.diagonal(matrix, offset).mean() for offset in range(-(frames - 1), frames)])


def receptive_field(
    models: Mapping[str, nn.Module], clips: Mapping[str, Sequence[torch.Tensor]], probes: int = 4,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per model, layer and offset: normalised influence and the analytic bound (`COLUMNS`).

    `clips[label]` are that model's input clips (1, T, 3, H, W), all of one length."""
    rows = []
    for label, model in models.items():
        layers = probe_layers(model)
        bounds = layer_bounds(model, layers)
        profiles: dict[str, list[np.ndarray]] = {}
        for k, clip in enumerate(clips[label]):
            for name, matrix in frame_influence(model, clip, layers, probes, seed + k).items():
                profile = by_offset(matrix)
                total = profile.sum()
                profiles.setdefault(name, []).append(profile / total if total > 0 else profile)
        for layer in layers:
            if layer.name not in profiles:
                continue
            profile = np.mean(profiles[layer.name], axis=0)
            frames = (profile.size + 1) // 2
            for offset, value in zip(range(-(frames - 1), frames), profile):
                rows.append((label, layer.name, offset, float(value), bounds[layer.name]))
    return pd.DataFrame(rows, columns=COLUMNS)


def reach_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and layer: the bound, the farthest offset with non-zero influence, the clip's longest
    offset, and whether the bound is reached (as far as the clip allows)."""
    rows = []
    for (model, layer), group in table.groupby(["model", "layer"], sort=False):
        nonzero = group.loc[group["influence"] > 0, "offset"].abs()
        reached = int(nonzero.max()) if not nonzero.empty else 0
        longest = int(group["offset"].max())
        bound = int(group["bound"].iloc[0])
        rows.append((model, layer, bound, reached, longest, reached == min(bound, longest)))
    columns = ["model", "layer", "bound", "reached", "longest_offset", "bound_reached"]
    return pd.DataFrame(rows, columns=columns)


def input_clips(
    model: nn.Module, data: str | Path, count: int = 4, frames: int | None = None
) -> list[torch.Tensor]:
    """`count` clips of `data`, spread over its videos, sampled as `model.spec` says (with `frames`
    frames when given: a longer clip shows a reach longer than the model's own length)."""
    import dataclasses
    import warnings

    from workbench.datasets import open_dataset
    from workbench.video import load_clip

    spec = model.spec if frames is None else dataclasses.replace(model.spec, frames=frames)
    items = open_dataset(data).items
    if not items:
        raise AnalysisError(f"{data}: no videos")
    with warnings.catch_warnings():  # a clip longer than the video repeats frames: fine for gradients
        warnings.filterwarnings("ignore", message=".*fewer than the.*")
        return [load_clip(item.path, spec) for item in evenly_spaced(items, count)]
