"""Evaluate a checkpoint on a dataset: accuracy, per class kind, confusion, reverse -> mirror."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import open_dataset, skipped_record
from .device import prepare_model
from .errors import DatasetError, VideoError
from .fingerprints import file_sha256
from .models import load_model
from .models.inference import predict_logits
from .models.memory import Budget, measure_footprint
from .progress import Progress
from .video import load_clip


def evaluate_model(
    model: torch.nn.Module, data: str | Path, progress: Progress | bool | None = None,
    amp: torch.dtype | None = None, strict: bool = False, memory: Budget | int | str | None = None,
) -> dict[str, Any]:
    """Run every video of `data` (and its time reversal) through `model` (on its device); return metrics.
    Clips per pass: 64 at most, fewer when the `memory` budget holds fewer.
    A video that cannot be decoded is skipped and listed with its reason (`skipped`), or stops the
    evaluation with `strict`. `progress(done, total)` (a callable) after each video."""
    spec = model.spec
    dataset = open_dataset(data)
    names = spec.class_names
    unknown = sorted(set(dataset.classes) - set(names))
    if unknown:
        raise DatasetError(f"{data}: classes {unknown} are not classes of the model")
    n_classes = len(names)
    labels, preds, rev_preds = [], [], []
    batch: list[torch.Tensor] = []
    batch_labels: list[int] = []

    def flush() -> None:
        if not batch:
            return
        x = torch.cat(batch)
        both = predict_logits(model, torch.cat((x, x.flip(1))), batch_size=passes, amp=amp).argmax(1)
        preds.extend(both[: len(batch)].tolist())
        rev_preds.extend(both[len(batch) :].tolist())
        labels.extend(batch_labels)
        batch.clear()
        batch_labels.clear()

    # 32 videos and their reversals held decoded besides the pass
    passes = Budget.of(memory).batch(measure_footprint(model), False, 64, reserve=64 * 4 * spec.frames * 3
                                     * spec.input_size**2, what="evaluate")
    skipped = []
    total = len(dataset.items)
    for done, item in enumerate(dataset.items):
        if callable(progress):
            progress(done, total)
        try:
            batch.append(load_clip(item.path, spec))
        except VideoError as err:
            if strict:
                raise VideoError(f"{err} (evaluate without --strict to skip it)") from None
            skipped.append(skipped_record(dataset.relative_name(item), str(err)))
            continue
        batch_labels.append(names.index(item.label_name))
        if len(batch) == 32:
            flush()
    flush()
    if callable(progress):
        progress(total, total)
    if not labels:
        raise DatasetError(f"{data}: no video could be decoded ({len(skipped)} skipped)")
    report = metrics_from_predictions(spec, np.array(labels), np.array(preds), np.array(rev_preds), n_classes)
    report["skipped"] = skipped
    return report


def metrics_from_predictions(
    spec: Any, labels: np.ndarray, preds: np.ndarray, rev_preds: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """Accuracy overall / by kind / per class, within-mirror-pair accuracy, reverse->mirror rate."""
    names = spec.class_names
    kinds = np.array([spec.class_kinds.get(n, "static") for n in names])
    mirrors = [spec.mirror_index(i) for i in range(n_classes)]
    mirror = np.array([-1 if m is None else m for m in mirrors])
    correct = preds == labels
    temporal = kinds[labels] == "temporal"
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (labels, preds), 1)
    report: dict[str, Any] = {
        "scheme": spec.scheme,
        "clips": int(len(labels)),
        "accuracy": float(correct.mean()) if len(labels) else float("nan"),
        "temporal_accuracy": float(correct[temporal].mean()) if temporal.any() else None,
        "static_accuracy": float(correct[~temporal].mean()) if (~temporal).any() else None,
        "per_class": {
            names[c]: float(correct[labels == c].mean()) for c in range(n_classes) if (labels == c).any()
        },
        "class_names": list(names),
        "confusion": confusion.tolist(),
    }
    has_mirror = mirror[labels] >= 0
    if has_mirror.any():
        in_pair = has_mirror & ((preds == labels) | (preds == mirror[labels]))
        report["pair_accuracy"] = float(correct[in_pair].mean()) if in_pair.any() else None
        report["pair_predictions"] = float(in_pair.sum() / has_mirror.sum())
        report["reverse_to_mirror"] = float((rev_preds[has_mirror] == mirror[labels[has_mirror]]).mean())
        report["reverse_to_mirror_per_class"] = {
            names[c]: float((rev_preds[labels == c] == mirror[c]).mean())
            for c in range(n_classes) if mirror[c] >= 0 and (labels == c).any()
        }
    return report


def evaluate_checkpoint(
    checkpoint: str | Path, data: str | Path, progress: Progress | bool | None = None,
    device: torch.device | None = None, amp: torch.dtype | None = None, strict: bool = False,
    memory: Budget | int | str | None = None,
) -> dict[str, Any]:
    """Load `checkpoint` and evaluate it on `data` (on `device`, default the CPU)."""
    model = load_model(checkpoint)
    if device is not None:
        model = prepare_model(model, device)
    report = evaluate_model(model, data, progress, amp, strict, memory)
    report.update(checkpoint=str(checkpoint), sha256=file_sha256(checkpoint), data=str(data))
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary of an evaluation."""

    def pct(v: Any) -> str:
        return f"{v:.1%}" if isinstance(v, float) else "-"

    lines = [
        f"{report['scheme']} on {report.get('data', '?')} ({report['clips']} clips)",
        f"  accuracy            {pct(report['accuracy'])}",
        f"  temporal classes    {pct(report['temporal_accuracy'])}",
        f"  static classes      {pct(report['static_accuracy'])}",
    ]
    if "pair_accuracy" in report:
        lines += [
            f"  within mirror pairs {pct(report['pair_accuracy'])}  (chance 50%)",
            f"  reverse -> mirror   {pct(report['reverse_to_mirror'])}",
        ]
    if report.get("skipped"):
        lines.append(f"  skipped {len(report['skipped'])} video(s) that cannot be decoded:")
        lines += [f"    {s['video']}: {s['reason']}" for s in report["skipped"]]
    lines.append("  per class:")
    lines += [f"    {name:18s} {pct(acc)}" for name, acc in report["per_class"].items()]
    return "\n".join(lines)
