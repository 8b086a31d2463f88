"""Scoring a chunk of decoded videos: every perturbed order through every model, one row each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    decoded: Iterable[Decoded],
    groups: list[tuple[ModelSpec, list[Member]]],
    config: ExperimentConfig,
    dataset_classes: Sequence[str],
    device: torch.device,
    amp: torch.dtype | None = None,
    batch_sizes: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Rows for a chunk of decoded videos: all perturbed clips of them in batches through every model;
    `batch_sizes` (one per group, default config.batch_size) are the clips per pass.

    `decoded` may be a stream: a batch runs as soon as enough videos have come in (while the next ones
    decode), cut where batching the whole chunk at once would cut it, so the rows are the same."""
    sizes = list(batch_sizes) if batch_sizes is not None else [config.batch_size] * len(groups)
    kept: list[Decoded] = []
    orders: list[list[list[FrameOrder]]] = [[] for _ in groups]  # per group, per video: its orders
    # per group: (clip on the device, order) of the perturbed clips not yet run
    pending: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in groups]
    logp: list[dict[str, list[torch.Tensor]]] = [{m.label: [] for m in members} for _, members in groups]

    def run(g: int, count: int) -> None:
        # only this batch of perturbed clips is gathered: the whole chunk's stack can be GBs at 224 px
        batch = torch.stack([clip.index_select(0, order) for clip, order in pending[g][:count]])
        del pending[g][:count]
        for member in groups[g][1]:
            logits = predict_logits(member.model, batch, amp=amp)
            logp[g][member.label].append(torch.log_softmax(logits, dim=1))

    for entry in decoded:
        kept.append(entry)
        _, item, clips = entry
        for g, (spec, _) in enumerate(groups):
            video = video_orders(item.name, spec.frames, config)
            orders[g].append(video)
            clip = clips[g].to(device, non_blocking=True)
            pending[g] += [(clip, torch.tensor(o.order, dtype=torch.int64, device=device)) for o in video]
            while len(pending[g]) >= sizes[g]:
                run(g, sizes[g])
    if not kept:
        return empty_rows()
    frames_out = []
    for g, (_, members) in enumerate(groups):
        if pending[g]:
            run(g, len(pending[g]))
        video_pos = np.concatenate([np.full(len(o), v) for v, o in enumerate(orders[g])])
        flat = [o for per_video in orders[g] for o in per_video]
        for member in members:
            # the member's own spec: models in a group share the input, not classes or scheme
            frames_out.append(rows(kept, orders[g], video_pos, flat, torch.cat(logp[g][member.label]),
                                   member, member.model.spec, dataset_classes))
    return pd.concat(frames_out, ignore_index=True)


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
