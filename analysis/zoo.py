"""Side-by-side comparison of models: cost and accuracy table, training curves, per-class results,
and predictions on one video (each as plain DataFrames / arrays for `figures` and reports)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.models import SCHEMES, ModelSpec, build_model
from workbench.models.complexity import count_flops_of_shape, zoo_table
from workbench.models.inference import predict_logits
from workbench.models.resnet import DEPTHS
from workbench.video import VideoSource, decode_side, preprocess, read_frames, sample_indices, video_info

METRIC_COLUMNS = ("accuracy", "temporal_accuracy", "static_accuracy", "pair_accuracy", "reverse_to_mirror")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "lr")


@dataclass
class ModelSummary:
    """What the comparison needs from one loaded model (plain data, cheap to cache)."""

    label: str
    spec: ModelSpec
    params: int
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # evaluate_model / manifest metrics
    metrics_source: str = ""  # where `metrics` were measured, in words
    metrics_note: str = ""  # why there are no metrics, when there are none


def summarize(label: str, model: torch.nn.Module) -> ModelSummary:
    """A ModelSummary of a loaded model (metrics are attached by the caller)."""
    return ModelSummary(
        label=label,
        spec=model.spec,
        params=sum(p.numel() for p in model.parameters()),
        history=list(getattr(model, "history", []) or []),
    )


def is_release(spec: ModelSpec) -> bool:
    """A model loaded from another code base's checkpoint (its cost is measured on the model itself)."""
    return spec.layout != "workbench"


def complexity_config(spec: ModelSpec) -> tuple[str, int, int, int]:
    """(backbone, frames, size, classes): the configuration a complexity table is measured at."""
    return spec.backbone, spec.frames, spec.input_size, spec.num_classes


def complexity_table(
    config: tuple[str, int, int, int], schemes: list[str], rounds: int = 5, threads: int = 1
) -> pd.DataFrame:
    """zoo_table's params and FLOPs, with latency measured interleaved across schemes.

    Timing each scheme in turn lets load from other processes land on one scheme only; rotating
    the order every round and taking the median spreads it over all of them alike. One thread by
    default: on a busy machine multi-threaded timings of small models vary ~100x (thread waits).
    """
    backbone, frames, size, classes = config
    table = zoo_table(backbone, frames, size, classes, schemes=schemes, latency=False)
    names = list(table["scheme"])
    models = {s: build_model(s, backbone=backbone, num_classes=classes, frames=frames).eval() for s in names}
    clip = torch.randn(1, frames, 3, size, size)
    times: dict[str, list[float]] = {s: [] for s in names}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _time_interleaved(models, clip, rounds, times)
    finally:
        torch.set_num_threads(before)
    table["latency_ms"] = [1000 * statistics.median(times[s]) for s in names]
    table["latency_vs_tsn"] = table["latency_ms"] / table.set_index("scheme").loc["tsn", "latency_ms"]
    table.attrs.update(latency_threads=threads, latency_rounds=rounds)
    return table


@torch.inference_mode()
def _time_interleaved(
    models: dict[str, torch.nn.Module], clip: torch.Tensor, rounds: int, times: dict[str, list[float]]
) -> None:
    """Append one forward time per model per round to `times`, model order rotated each round."""
    names = list(models)
    for model in models.values():
        model(clip)  # warm-up
    for r in range(rounds):
        for scheme in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            models[scheme](clip)
            times[scheme].append(time.perf_counter() - start)


def measured_cost(model: torch.nn.Module, rounds: int = 3, threads: int = 1) -> dict[str, float]:
    """Params, GFLOPs and latency of a loaded model itself (a release: its backbone options or its own
    module are not what `zoo_table` builds), relative to a TSN of the same backbone, frames and size
    when our builder has that backbone; the ratios are NaN otherwise. Latency is interleaved with the
    TSN's, one thread (see `complexity_table`)."""
    spec: ModelSpec = model.spec
    shape = (1, spec.frames, 3, spec.input_size, spec.input_size)
    cost = {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "gflops": count_flops_of_shape(model, shape) / 1e9}
    models = {"model": model}
    if spec.backbone in DEPTHS:
        models["tsn"] = build_model("tsn", backbone=spec.backbone, num_classes=spec.num_classes,
                                    frames=spec.frames).eval()
    times: dict[str, list[float]] = {name: [] for name in models}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _time_interleaved(models, torch.randn(shape), rounds, times)
    finally:
        torch.set_num_threads(before)
    cost["latency_ms"] = 1000 * statistics.median(times["model"])
    tsn = models.get("tsn")
    cost.update(params_vs_tsn=np.nan, flops_vs_tsn=np.nan, latency_vs_tsn=np.nan)
    if tsn is not None:
        cost["params_vs_tsn"] = cost["params_M"] * 1e6 / sum(p.numel() for p in tsn.parameters())
        cost["flops_vs_tsn"] = cost["gflops"] * 1e9 / count_flops_of_shape(tsn, shape)
        cost["latency_vs_tsn"] = cost["latency_ms"] / (1000 * statistics.median(times["tsn"]))
    return cost


def class_mismatch(spec: ModelSpec, classes: list[str]) -> str | None:
    """Why a model cannot be scored on a dataset with `classes` (None when it can)."""
    unknown = [name for name in classes if name not in spec.class_names]
    if not unknown:
        return None
    shown = ", ".join(unknown[:4]) + (f" (+{len(unknown) - 4} more)" if len(unknown) > 4 else "")
    return f"its classes are not the probe classes (the probe has {shown}, which the model lacks)"


def scheme_table(
    summaries: list[ModelSummary], complexity: dict[tuple, pd.DataFrame],
    measured: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per model: scheme, configuration, cost relative to TSN and accuracy metrics.

    Cost comes from `measured` (by model label: releases, see `measured_cost`) or else from the
    complexity table of the model's configuration (our schemes as `zoo_table` builds them).
    """
    rows = []
    for summary in summaries:
        spec = summary.spec
        table = complexity.get(complexity_config(spec))
        cost: Any = (measured or {}).get(summary.label)
        if cost is None and table is not None and spec.scheme in set(table["scheme"]):
            cost = table.set_index("scheme").loc[spec.scheme]
        metrics = summary.metrics or {}
        row: dict[str, Any] = {
            "model": summary.label,
            "scheme": spec.scheme,
            "title": SCHEMES[spec.scheme].title if spec.scheme in SCHEMES else spec.scheme,
            "kind": SCHEMES[spec.scheme].kind if spec.scheme in SCHEMES else "",
            "backbone": spec.backbone,
            "frames": spec.frames,
            "size": spec.input_size,
            "params_M": summary.params / 1e6,
        }
        for column in ("gflops", "params_vs_tsn", "flops_vs_tsn", "latency_ms", "latency_vs_tsn"):
            row[column] = float(cost[column]) if cost is not None and column in cost else np.nan
        for column in METRIC_COLUMNS:
            value = metrics.get(column)
            row[column] = float(value) if isinstance(value, (int, float)) else np.nan
        row["measured_on"] = summary.metrics_source if summary.metrics else summary.metrics_note
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(histories: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Training histories in long form: one row per (model, epoch)."""
    frames = []
    for label, history in histories.items():
        if not history:
            continue
        table = pd.DataFrame(history)
        if "epoch" not in table.columns:
            table["epoch"] = range(1, len(table) + 1)
        table = table[[c for c in HISTORY_COLUMNS if c in table.columns]]
        table.insert(0, "model", label)
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=["model", *HISTORY_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def per_class_frame(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per-class accuracy: one row per model, one column per class (first model's class order)."""
    rows = {label: m.get("per_class") or {} for label, m in metrics.items() if m and m.get("per_class")}
    classes: list[str] = []
    for per_class in rows.values():
        classes += [name for name in per_class if name not in classes]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=classes).rename_axis("model")


def confusion_frame(metrics: dict[str, Any]) -> pd.DataFrame | None:
    """Confusion matrix (rows: true class, columns: predicted class), or None if not recorded."""
    confusion, names = metrics.get("confusion"), metrics.get("class_names")
    if confusion is None or names is None:
        return None
    return pd.DataFrame(np.asarray(confusion, dtype=int), index=list(names), columns=list(names))


@dataclass
class Prediction:
    """One model's prediction on one video: the frames it saw and its class probabilities."""

    class_names: list[str]
    frames: np.ndarray  # uint8 (T, H, W, 3): the sampled frames, before preprocessing
    indices: list[int]  # which frames of the video were sampled
    probabilities: np.ndarray  # (classes,) softmax, frames in recorded order
    reversed_probabilities: np.ndarray  # (classes,) softmax, frame order reversed
    mirror_of: dict[str, str | None] = field(default_factory=dict)  # the model's temporal mirror table

    def top(self, reverse: bool = False) -> tuple[str, float]:
        """(class name, probability) of the most likely class."""
        probs = self.reversed_probabilities if reverse else self.probabilities
        best = int(np.argmax(probs))
        return self.class_names[best], float(probs[best])


def predict_video(model: torch.nn.Module, video: VideoSource) -> Prediction:
    """Sample the video as the model's spec says (test sampling), predict it forwards and reversed."""
    spec: ModelSpec = model.spec
    info = video_info(video)
    indices = sample_indices(info["num_frames"], spec.frames, mode="segment", train=False)
    # shown frames are decoded at a size the preprocessing crops from, not at the full size
    frames = read_frames(video, indices, max_side=decode_side(info["height"], info["width"], spec))
    clip = preprocess(frames, spec).unsqueeze(0)
    probs = predict_logits(model, torch.cat((clip, clip.flip(1)))).softmax(dim=1).numpy()
    return Prediction(list(spec.class_names), frames.numpy(), indices.tolist(), probs[0], probs[1],
                      dict(spec.mirror_of))


def prediction_frame(
    predictions: dict[str, Prediction], true_class: str | None = None, mirror_class: str | None = None
) -> pd.DataFrame:
    """One row per model: top class forwards and reversed, with probabilities."""
    rows = []
    for label, prediction in predictions.items():
        name, prob = prediction.top()
        rev_name, rev_prob = prediction.top(reverse=True)
        row: dict[str, Any] = {"model": label, "predicted": name, "probability": prob}
        if true_class is not None:
            row["correct"] = name == true_class
        row.update({"reversed_predicted": rev_name, "reversed_probability": rev_prob})
        if mirror_class is not None:
            row["reversed_is_mirror"] = rev_name == mirror_class
        rows.append(row)
    return pd.DataFrame(rows)


def probability_frame(predictions: dict[str, Prediction], reverse: bool = False) -> pd.DataFrame:
    """Class probabilities: one row per model, one column per class (union, first model's order)."""
    rows = {
        label: dict(zip(p.class_names, p.reversed_probabilities if reverse else p.probabilities))
        for label, p in predictions.items()
    }
    classes: list[str] = []
    for probs in rows.values():
        classes += [name for name in probs if name not in classes]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=classes).rename_axis("model")
