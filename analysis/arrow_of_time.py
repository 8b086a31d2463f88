"""Arrow of time: can a linear probe on a layer's pooled features tell a clip from its reverse?

Every video gives two examples: its clip played forward (label 1) and the same clip reversed (label 0),
both run in one batch. Per layer, an L2 logistic regression (`analysis.linear_probe`) is cross-validated
over folds split by video, so a clip and its reverse are always in the same fold, and scored on the
held-out folds; the interval is a percentile bootstrap over videos of the per-video accuracy.

Exactly 0.5 for order-invariant features: pooling is exactly order-invariant (`analysis.layer_features`),
so where a layer cannot see order the clip and its reverse have bit-identical features, the probe (which
predicts each example from its own features) gives both the same label, and each video contributes one
right and one wrong: accuracy exactly 1/2, and every bootstrap resample too.

Which way is forward: as stored, except in datasets whose classes.json pairs classes as mirrors (the
probe). There the second class of a pair is the first one reversed, so "forward" is the first class's
direction and clips of the second are reversed to it; classes of kind "static" are left out, their
motion (a random walk) runs the same way both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.datasets import VideoDataset, open_dataset
from workbench.errors import AnalysisError
from workbench.progress import Progress
from workbench.video import load_clip

from .layer_features import evenly_spaced, pooled_layers
from .linear_probe import fit_logistic, grouped_folds
from .statistics import bootstrap_interval

SUMMARY_COLUMNS = ["model", "layer", "accuracy", "ci_low", "ci_high"]


@dataclass
class ArrowResult:
    """Per model and layer: accuracy and interval (`summary`); per video: both examples scored (`results`)."""

    summary: pd.DataFrame
    results: pd.DataFrame
    videos: int


def arrow_videos(dataset: VideoDataset) -> list[tuple[int, bool]]:
    """(item index, reverse it to run forward) of the videos that have an arrow of time."""
    info = {entry["name"]: entry for entry in (dataset.class_info or [])}
    order = {name: i for i, name in enumerate(dataset.classes)}
    chosen = []
    for index, item in enumerate(dataset.items):
        entry = info.get(item.label_name, {})
        if entry.get("kind") == "static":
            continue
        mirror = entry.get("mirror_of")
        chosen.append((index, mirror is not None and order.get(mirror, len(order)) < order[item.label_name]))
    return chosen


def pair_features(model: nn.Module, clips: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Pooled features per layer, (videos, 2, C): each clip forward and reversed, in one batch."""
    batch = torch.cat([torch.cat((clip, clip.flip(1))) for clip in clips])
    return {name: value.reshape(len(clips), 2, -1) for name, value in pooled_layers(model, batch).items()}


def probe_layer(features: np.ndarray, folds: int, seed: int, l2: float) -> np.ndarray:
    """(videos, 2) correctness of the held-out predictions for one layer's (videos, 2, C) features."""
    videos = features.shape[0]
    fold_of = grouped_folds(videos, folds, seed)
    labels = np.array([1, 0])
    correct = np.zeros((videos, 2), dtype=bool)
    for fold in np.unique(fold_of):
        train, test = fold_of != fold, fold_of == fold
        probe = fit_logistic(features[train].reshape(-1, features.shape[2]),
                             np.tile(labels, int(train.sum())), l2=l2)
        predicted = probe.predict(features[test].reshape(-1, features.shape[2])).reshape(-1, 2)
        correct[test] = predicted == labels
    return correct


def arrow_of_time(
    models: Mapping[str, nn.Module], data: str | Path, folds: int = 5, max_videos: int | None = None,
    bootstrap: int = 2000, seed: int = 0, l2: float = 1e-2, batch_videos: int = 8,
    progress: Progress | None = None,
) -> ArrowResult:
    """The arrow-of-time probe of every model's layers on the videos of `data`."""
    dataset = open_dataset(data)
    chosen = evenly_spaced(arrow_videos(dataset), max_videos)
    if len(chosen) < 2:
        raise AnalysisError(f"{data}: {len(chosen)} video(s) with an arrow of time; the probe needs 2")
    summary, results = [], []
    total, done = len(models) * len(chosen), 0
    for label, model in models.items():
        per_layer: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(chosen), batch_videos):
            part = chosen[start : start + batch_videos]
            clips = [load_clip(dataset.items[i].path, model.spec) for i, _ in part]
            clips = [clip.flip(1) if flip else clip for clip, (_, flip) in zip(clips, part)]
            for name, value in pair_features(model, clips).items():
                per_layer.setdefault(name, []).append(value)
            done += len(part)
            if progress is not None:
                progress(done, total)
        for name, chunks in per_layer.items():
            correct = probe_layer(np.concatenate(chunks), folds, seed, l2)
            per_video = correct.mean(axis=1)
            low, high = bootstrap_interval(per_video, resamples=bootstrap, seed=seed)
            summary.append((label, name, float(correct.mean()), low, high))
            for (index, flipped), (forward, backward) in zip(chosen, correct):
                item = dataset.items[index]
                results.append((label, name, dataset.relative_name(item), item.label_name, flipped,
                                bool(forward), bool(backward)))
    return ArrowResult(
        pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
        pd.DataFrame(results, columns=["model", "layer", "video", "class_name", "reversed_to_forward",
                                       "forward_correct", "backward_correct"]),
        len(chosen))
