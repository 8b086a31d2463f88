"""Scoring a chunk of decoded videos: every perturbed order through every model, one row each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.models.inference import predict_logits
from workbench.models.spec import ModelSpec

from ..perturb import FrameOrder
from .classes import model_label
from .config import NO_LEVEL, ExperimentConfig, video_orders
from .decoding import Item

# the results table: column -> dtype (one row per video x model x perturbation x repeat)
ROW_DTYPES = {
    "video_index": "int64", "video": str, "class_name": str, "class_kind": str, "model": str, "scheme": str,
    "perturbation": str, "repeat": "int64", "level": "float64", "order": str, "label": "int64",
    "prediction": "int64", "prediction_name": str, "correct": bool, "p_true": "float64", "mirror": "int64",
    "p_mirror": "float64", "predicted_mirror": bool, "kl": "float64", "flip": bool,
}


@dataclass
class Member:
    """A model in the experiment with its class table in the dataset's terms."""

    label: str
    model: torch.nn.Module
    mirrors: list[int]
    kinds: list[str]


Decoded = tuple[int, Item, list[torch.Tensor]]  # (video index, item, one clip per input group)


def empty_rows() -> pd.DataFrame:
    """A results table without rows, with every column and dtype."""
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in ROW_DTYPES.items()})


def score_chunk(
    decoded: list[Decoded],
    groups: list[tuple[ModelSpec, list[Member]]],
    config: ExperimentConfig,
    dataset_classes: Sequence[str],
    device: torch.device,
    amp: torch.dtype | None = None,
    batch_sizes: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Rows for a chunk of decoded videos: batch all perturbed clips of them, score every model;
    `batch_sizes` (one per group, default config.batch_size) are the clips per pass."""
    frames_out = []
    for g, (spec, members) in enumerate(groups):
        if not decoded:
            break
        # (V, T, 3, S, S): small (one clip per video), so it moves to the model's device once
        clips = torch.stack([clips[g] for _, _, clips in decoded]).to(device, non_blocking=True)
        orders = [video_orders(item.name, spec.frames, config) for _, item, _ in decoded]
        video_pos = np.concatenate([np.full(len(o), v) for v, o in enumerate(orders)])
        flat = [o for per_video in orders for o in per_video]
        order_index = torch.tensor([o.order for o in flat], dtype=torch.int64, device=device)
        positions = torch.from_numpy(video_pos).to(device)
        logp: dict[str, list[torch.Tensor]] = {m.label: [] for m in members}
        size = batch_sizes[g] if batch_sizes is not None else config.batch_size
        for start in range(0, len(flat), size):
            stop = start + size
            # Gather only this batch of perturbed clips: the full stack can be GBs at 224 px.
            batch = clips[positions[start:stop, None], order_index[start:stop]]
            for member in members:
                logits = predict_logits(member.model, batch, amp=amp)
                logp[member.label].append(torch.log_softmax(logits, dim=1))
        for member in members:
            # the member's own spec: models in a group share the input, not classes or scheme
            frames_out.append(rows(decoded, orders, video_pos, flat, torch.cat(logp[member.label]),
                                   member, member.model.spec, dataset_classes))
    return pd.concat(frames_out, ignore_index=True) if frames_out else empty_rows()


def rows(
    decoded: list[Decoded],
    orders: list[list[FrameOrder]],
    video_pos: np.ndarray,
    flat: list[FrameOrder],
    logp: torch.Tensor,
    member: Member,
    spec: ModelSpec,
    dataset_classes: Sequence[str],
) -> pd.DataFrame:
    """One model's rows for the decoded videos of a chunk."""
    labels = np.array([model_label(spec, item.label_name or "", dataset_classes) for _, item, _ in decoded])
    label = labels[video_pos]
    mirror = np.array(member.mirrors)[label]
    probs = logp.exp()
    prediction = logp.argmax(1).numpy()
    rows_n = len(flat)
    # The original clip of each video is the first order listed for it (table order).
    first = np.concatenate([[0], np.cumsum([len(o) for o in orders])[:-1]])[video_pos]
    orig_logp = logp[torch.from_numpy(first)]
    kl = (orig_logp.exp() * (orig_logp - logp)).sum(1).clamp_min(0).numpy()
    p_mirror = np.where(mirror >= 0, probs[np.arange(rows_n), np.maximum(mirror, 0)].numpy(), np.nan)
    return pd.DataFrame({
        "video_index": np.array([index for index, _, _ in decoded])[video_pos],
        "video": [decoded[v][1].name for v in video_pos],
        "class_name": [decoded[v][1].label_name for v in video_pos],
        "class_kind": np.array(member.kinds)[label],
        "model": member.label,
        "scheme": spec.scheme,
        "perturbation": [o.perturbation for o in flat],
        "repeat": np.array([o.repeat for o in flat], dtype=np.int64),
        "level": np.array([NO_LEVEL if o.level is None else o.level for o in flat], dtype=np.float64),
        "order": [o.text for o in flat],
        "label": label.astype(np.int64),
        "prediction": prediction.astype(np.int64),
        "prediction_name": np.array(spec.class_names)[prediction],
        "correct": prediction == label,
        "p_true": probs[np.arange(rows_n), label].numpy().astype(np.float64),
        "mirror": mirror.astype(np.int64),
        "p_mirror": p_mirror.astype(np.float64),
        "predicted_mirror": (mirror >= 0) & (prediction == mirror),
        "kl": kl.astype(np.float64),
        "flip": prediction != prediction[first],
    })
