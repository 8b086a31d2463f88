"""Attribution quality over a dataset: per-clip metrics of every model x method, chunked and resumable,
and a per model x method summary with bootstrap intervals."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench import distributed, rundir
from workbench.datasets import VideoDataset, open_dataset, skipped_record, unreadable_reason
from workbench.errors import AnalysisError, VideoError
from workbench.masks import clip_mask
from workbench.models.memory import Budget
from workbench.models.spec import ModelSpec
from workbench.probe import load_mask, mask_path
from workbench.progress import Progress
from workbench.video import load_clips, video_info

from ..statistics import bootstrap_interval
from .methods import predicted_class
from .one_video import MethodOptions, resolve_target, score_clip

__all__ = ["SUMMARY_METRICS", "pick_items", "score_dataset", "summarize_scores"]

SUMMARY_METRICS = ("energy_in_mask", "area_share", "pointing_hit", "deletion_auc_pixel",
                   "insertion_auc_pixel", "deletion_auc_frame", "insertion_auc_frame", "temporal_spread",
                   "seconds")


def summarize_scores(results: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model x method: mean of each metric with its bootstrap 95% interval, and the clip count."""
    rows = []
    for (model_name, method), group in results.groupby(["model", "method"], sort=False):
        row: dict[str, object] = {"model": model_name, "method": method, "clips": len(group)}
        for metric in SUMMARY_METRICS:
            if metric not in group:
                continue
            values = group[metric].to_numpy(dtype=np.float64)
            low, high = bootstrap_interval(values, reps, seed)
            row[metric] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            row[f"{metric}_low"], row[f"{metric}_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)


def pick_items(items: list, max_clips: int | None) -> list:
    """At most `max_clips` items, taken round-robin over classes so every class is represented."""
    if max_clips is None or max_clips >= len(items):
        return list(items)
    by_class: dict[int, list] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    queues = list(by_class.values())
    picked: list = []
    depth = 0
    while len(picked) < max_clips:
        for queue in queues:
            if depth < len(queue) and len(picked) < max_clips:
                picked.append(queue[depth])
        depth += 1
    return picked


class _Tally:
    """Maps done of all there are, reported to a (done, total) callback."""

    def __init__(self, total: int, done: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, done, progress
        self.update(0)

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _score_items(
    models: dict[str, nn.Module], dataset: VideoDataset, root: Path, items: Sequence, methods: Sequence[str],
    target: str | int, curve_steps: int, seed: int, bar: _Tally, options: MethodOptions, strict: bool,
    memory: Budget | int | str | None = None,
) -> pd.DataFrame:
    """Per-clip metric rows of every model x method for some dataset items (undecodable ones skipped)."""
    rows = []
    for item in items:
        # named (and seeded) by the path inside the dataset: rows do not depend on where it lies
        relative = dataset.relative_name(item)
        try:
            frames = video_info(item.path)["num_frames"]
            clips = load_clips(item.path, [model.spec for model in models.values()])  # decoded once
        except VideoError as err:
            if strict:
                raise VideoError(f"{err} (run without --strict to skip it)") from None
            bar.update(len(models) * len(methods))  # listed as skipped when the parts are merged
            continue
        has_mask = mask_path(root, relative).is_file()
        video_mask = load_mask(root, relative) if has_mask else None
        if video_mask is not None and video_mask.shape[0] != frames:
            video_mask = None  # a mask that does not match its video would score nonsense
        for (name, model), clip in zip(models.items(), clips):
            spec: ModelSpec = model.spec
            clip = clip.unsqueeze(0)
            names = spec.class_names
            label = names.index(item.label_name) if item.label_name in names else None
            predicted = predicted_class(model, clip)
            chosen = resolve_target(target, spec, predicted, label, mirror_of="true")
            mask = clip_mask(video_mask, spec) if video_mask is not None else None
            for method in methods:
                if chosen is None:
                    bar.update()
                    continue
                # seeded per clip x model x method (SmoothGrad's noise): a row does not depend on
                # which process scored it or what it scored before
                torch.manual_seed(seed + zlib.crc32(f"{relative}|{name}|{method}".encode()))
                scored = score_clip(model, clip, method, chosen, mask=mask, curve_steps=curve_steps,
                                    memory=memory, **dict(options.get(method, {})))
                rows.append({"model": name, "scheme": spec.scheme, "method": method,
                             "clip": relative, "label": item.label_name,
                             "predicted": spec.class_names[predicted], **scored.row})
                bar.update()
    return pd.DataFrame(rows)


def score_dataset(
    models: dict[str, nn.Module],
    data: str | Path,
    methods: Sequence[str],
    target: str | int = "true",
    max_clips: int | None = None,
    progress: Progress | bool | None = None,
    curve_steps: int = 16,
    *,
    options: MethodOptions | None = None,
    out: str | Path | None = None,
    run: dict[str, Any] | None = None,
    chunk_clips: int = 8,
    seed: int = 0,
    strict: bool = False,
    memory: Budget | int | str | None = None,
) -> pd.DataFrame:
    """Per-clip metrics of every model x method over a dataset (localisation where masks exist).

    A clip that cannot be decoded is skipped (`strict`: stops the run); the table's
    `attrs["skipped"]` lists every clip without rows with its reason. With `out` (and its `run`
    record, whose identity a resumed run must match), each chunk of `chunk_clips` clips is kept as
    out/parts/part-NNNNNN.parquet, so a killed run continues where it stopped. Under
    torch.distributed (torchrun) the chunks are shared round robin between the ranks and every rank
    returns the merged table, the same a single process gives."""
    context = distributed.current()
    if context.distributed and out is None:
        raise AnalysisError("a distributed run needs an output directory: ranks share their parts through it")
    if chunk_clips < 1:
        raise AnalysisError(f"chunk_clips must be >= 1, got {chunk_clips}")
    dataset = open_dataset(data)
    root = Path(data)
    items = pick_items(dataset.items, max_clips)
    chunks = [items[i : i + chunk_clips] for i in range(0, len(items), chunk_clips)]
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and run is not None:
        rundir.on_main(lambda: rundir.open_run_dir(out_dir, run), AnalysisError)
    parts = rundir.Parts(out_dir)
    mine = distributed.shard(len(chunks), context)
    pending = parts.pending(mine)
    maps = len(models) * len(methods)
    bar = _Tally(sum(len(chunks[n]) for n in mine) * maps,
                 sum(len(chunks[n]) for n in mine if n not in pending) * maps,
                 progress if callable(progress) and context.is_main else None)
    for number in pending:
        parts.save(number, _score_items(models, dataset, root, chunks[number], methods, target,
                                        curve_steps, seed, bar, options or {}, strict, memory))
    distributed.barrier()  # every rank's parts are on disk
    finished = [part for part in parts.read(len(chunks)) if not part.empty]
    results = pd.concat(finished, ignore_index=True) if finished else pd.DataFrame()
    scored = set(results["clip"]) if not results.empty else set()
    results.attrs["skipped"] = [
        skipped_record(dataset.relative_name(item), unreadable_reason(item.path)
                       or "no target class to explain for this clip")
        for item in items if dataset.relative_name(item) not in scored]
    return results
