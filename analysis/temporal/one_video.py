"""One video under every perturbation, for looking at: the frames and what each model says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from workbench.models.inference import predict_logits
from workbench.models.spec import ModelSpec
from workbench.video import load_clips, read_frames, sample_indices, video_info

from ..perturb import FrameOrder
from .config import ExperimentConfig, ExperimentError, video_orders
from .decoding import one_thread

__all__ = ["ClipOrders", "clip_orders", "sampled_frames"]


@dataclass
class ClipOrders:
    """One video under every perturbation: the frames each model sees and what each model says."""

    frames: torch.Tensor  # uint8 (T,H,W,3) sampled for the first model's spec
    orders: list[FrameOrder]
    predictions: pd.DataFrame  # model, perturbation, repeat, level, order, prediction, probability


def sampled_frames(path: str, spec: ModelSpec, max_side: int = 160) -> torch.Tensor:
    """The uint8 frames (T,H,W,3) a model with `spec` samples from a video (for display)."""
    info = video_info(path)
    return read_frames(path, sample_indices(info["num_frames"], spec.frames), max_side=max_side)


def clip_orders(
    models: Mapping[str, torch.nn.Module],
    video: str | Path,
    config: ExperimentConfig | None = None,
    true_class: str | None = None,
) -> ClipOrders:
    """Every model's prediction on one video under every perturbed order (seeded by its file name)."""
    config = config or ExperimentConfig()
    if not models:
        raise ExperimentError("no models to test")
    path = str(video)
    name = Path(path).name
    rows = []
    with one_thread():
        clips = load_clips(path, [model.spec for model in models.values()])  # the video decoded once
    for (label, model), clip in zip(models.items(), clips):
        spec = model.spec
        orders = video_orders(name, spec.frames, config)
        index = torch.tensor([o.order for o in orders], dtype=torch.int64)
        probs = torch.log_softmax(predict_logits(model, clip[index], config.batch_size), 1).exp()
        truth = spec.class_names.index(true_class) if true_class in spec.class_names else None
        for row, order in enumerate(orders):
            predicted = int(probs[row].argmax())
            rows.append({
                "model": label, "perturbation": order.perturbation, "repeat": order.repeat,
                "level": order.level, "order": order.text,
                "prediction": spec.class_names[predicted], "probability": float(probs[row, predicted]),
                "p_true": float(probs[row, truth]) if truth is not None else float("nan"),
                "correct": predicted == truth if truth is not None else None,
            })
    first_spec = next(iter(models.values())).spec
    return ClipOrders(
        frames=sampled_frames(path, first_spec),
        orders=video_orders(name, first_spec.frames, config),
        predictions=pd.DataFrame(rows),
    )
