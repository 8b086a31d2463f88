"""Quality of attribution maps: localisation, faithfulness, agreement and the randomisation check.

All maps are (T, H, W) arrays as `analysis.attribution.attribute` returns them; masks are bool
(T, H, W) in the same geometry (use `clip_mask` to bring a probe video's mask there).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.models.spec import ModelSpec
from workbench.video import preprocess, sample_indices

from .attribution import (
    Attribution,
    attribute,
    class_probabilities,
    display_frames,
    predicted_class,
    temporal_profile,
    temporal_spread,
)
from .parts import PARTS_DIR, Parts, on_main


def clip_mask(video_mask: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """A probe video's object mask (T_video, H, W) as the model sees it: bool (T, S, S).

    Frames follow the eval sampler (`sample_indices(..., train=False)`, as `load_clip`); the geometry
    is `preprocess` itself (resize, centre crop) run on the mask with a neutral normalisation, then
    thresholded at 0.5, so the mask keeps its area share.
    """
    mask = np.asarray(video_mask, dtype=bool)
    picked = mask[sample_indices(mask.shape[0], spec.frames, train=False)]
    as_rgb = torch.from_numpy(np.repeat(picked[..., None], 3, axis=-1).astype(np.uint8) * 255)
    neutral = replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_scale=1.0, channel_order="RGB")
    return (preprocess(as_rgb, neutral)[:, 0] >= 0.5).numpy()


@dataclass
class Localisation:
    """How much of a map lies on the object."""

    energy_in_mask: float  # share of the map's mass inside the mask
    area_share: float  # share of the clip's pixels inside the mask: a uniform map's energy_in_mask
    pointing_hit: bool  # the map's maximum lies inside the mask

    @property
    def gain(self) -> float:
        """energy_in_mask / area_share: > 1 means better than a uniform map."""
        return self.energy_in_mask / self.area_share if self.area_share > 0 else float("nan")


def localisation(attribution_map: np.ndarray, mask: np.ndarray) -> Localisation:
    """Energy-in-mask, area share and pointing game of a (T, H, W) map against a bool mask."""
    values = np.abs(np.asarray(attribution_map, dtype=np.float64))
    mask = np.asarray(mask, dtype=bool)
    if values.shape != mask.shape:
        raise ValueError(f"map {values.shape} and mask {mask.shape} differ in shape")
    total = values.sum()
    energy = float(values[mask].sum() / total) if total > 0 else float("nan")
    # ties at the maximum (flat maps): a hit only if every maximal location is on the object
    peak = values == values.max()
    hit = bool(total > 0 and mask[peak].all())
    return Localisation(energy_in_mask=energy, area_share=float(mask.mean()), pointing_hit=hit)


@dataclass
class Faithfulness:
    """Deletion and insertion curves: class probability as the most-attributed units go or come."""

    fractions: np.ndarray  # share of units removed (deletion) or restored (insertion)
    deletion: np.ndarray  # target probability after removing the top fraction
    insertion: np.ndarray  # target probability with only the top fraction kept
    unit: str  # "pixel" (a (t, y, x) location, all channels) or "frame"

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve (lower: the map found what matters)."""
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve (higher: the map found what matters)."""
        return float(np.trapezoid(self.insertion, self.fractions))


def _ranked_units(attribution_map: np.ndarray, unit: str) -> tuple[np.ndarray, int]:
    """Unit indices, most attributed first (stable, so ties keep their order), and the unit count."""
    values = np.abs(np.asarray(attribution_map, dtype=np.float64))
    if unit == "frame":
        scores = values.reshape(values.shape[0], -1).sum(1)
    elif unit == "pixel":
        scores = values.reshape(-1)
    else:
        raise ValueError(f"unit must be 'pixel' or 'frame', not {unit!r}")
    return np.argsort(-scores, kind="stable"), scores.size


def deletion_insertion(
    model: nn.Module,
    clip: torch.Tensor,
    attribution_map: np.ndarray,
    target: int,
    steps: int = 16,
    unit: str = "pixel",
    baseline: float = 0.0,
) -> Faithfulness:
    """Deletion/insertion curves of a map; removed values become `baseline` (the mean colour)."""
    # built on the CPU; class_probabilities moves each batch to the model's device
    clip = clip.reshape(1, *clip.shape[-4:]).float().cpu()
    frames, channels, height, width = clip.shape[1:]
    order, units = _ranked_units(attribution_map, unit)
    steps = min(steps, units)
    counts = np.round(np.linspace(0, units, steps + 1)).astype(np.int64)
    # rank[u] = position of unit u in the order: "u is among the top k" is rank[u] < k
    rank = torch.empty(units, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(units)
    if unit == "frame":
        rank = rank.view(frames, 1, 1, 1).expand(frames, 1, height, width)
    else:
        rank = rank.view(frames, 1, height, width)
    top = torch.stack([rank < int(k) for k in counts])  # (steps+1, T, 1, H, W)
    base = torch.full_like(clip, baseline)
    deleted = torch.where(top, base, clip)
    inserted = torch.where(top, clip, base)
    probs = class_probabilities(model, torch.cat([deleted, inserted]), target)
    n = counts.size
    return Faithfulness(fractions=counts / units, deletion=probs[:n], insertion=probs[n:], unit=unit)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (average ranks for ties)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps of {x.size} and {y.size} values cannot be compared")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with tied values sharing their mean rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def agreement_table(maps: dict[str, np.ndarray]) -> np.ndarray:
    """Pairwise rank correlations of named maps (methods of one model, or models on one clip)."""
    names = list(maps)
    table = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            table[i, j] = table[j, i] = rank_correlation(maps[names[i]], maps[names[j]])
    return table


def last_layers(model: nn.Module) -> list[str]:
    """Top-level parameterised children, output side first (the cascade order of Adebayo et al.)."""
    names = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    return names[::-1]


def randomized_copy(model: nn.Module, layers: Iterable[str], seed: int = 0) -> nn.Module:
    """A copy of `model` whose named layers get fresh random weights (BN statistics reset too)."""
    clone = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(clone.named_modules())
    with torch.no_grad():
        for layer in layers:
            for name, tensor in modules[layer].state_dict().items():
                if not tensor.is_floating_point():
                    continue
                if name.endswith("running_var"):
                    tensor.fill_(1.0)
                elif name.endswith("running_mean") or tensor.dim() < 2 and name.endswith("bias"):
                    tensor.zero_()
                elif tensor.dim() < 2:
                    tensor.fill_(1.0)
                else:
                    fan_in = tensor[0].numel()
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    return clone.eval()


@dataclass
class SanityStep:
    """One step of the cascading randomisation: how similar the map stays."""

    layers: tuple[str, ...]
    rank_correlation: float  # between the trained and the randomised model's maps (1 = unchanged)


def randomization_check(
    model: nn.Module,
    clip: torch.Tensor,
    method: str,
    target: int | None = None,
    depth: int = 2,
    seed: int = 0,
    **opts: object,
) -> list[SanityStep]:
    """Adebayo et al.'s model-randomisation test: randomise the last 1..depth layers, compare maps."""
    original = attribute(model, clip, method, target=target, **opts)
    cascade = last_layers(model)[:depth]
    steps = []
    for k in range(1, len(cascade) + 1):
        layers = tuple(cascade[:k])
        random_map = attribute(randomized_copy(model, layers, seed), clip, method, target=original.target,
                               **opts).map
        steps.append(SanityStep(layers=layers, rank_correlation=rank_correlation(original.map, random_map)))
    return steps


def bootstrap_interval(
    values: Sequence[float], reps: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaNs dropped; NaN bounds when nothing is left)."""
    data = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(reps, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def resolve_target(choice: str | int, label: int | None, predicted: int, spec: ModelSpec) -> int | None:
    """The class to explain: 'predicted', 'true', 'mirror' (of the true class) or an index."""
    if isinstance(choice, int):
        return choice
    if choice == "predicted":
        return predicted
    if choice == "true":
        return label
    if choice == "mirror":
        return None if label is None else spec.mirror_index(label)
    raise ValueError(f"target must be predicted, true, mirror or a class index, not {choice!r}")


def score_clip(
    model: nn.Module,
    clip: torch.Tensor,
    method: str,
    target: int,
    mask: np.ndarray | None = None,
    curve_steps: int = 16,
    **opts: object,
) -> tuple[dict[str, float], Attribution]:
    """Every per-clip metric of one model x method: a flat row and the Attribution itself."""
    result = attribute(model, clip, method, target=target, **opts)
    row: dict[str, float] = {
        "target": target,
        "temporal_spread": temporal_spread(temporal_profile(result.map)),
        "seconds": result.seconds,
    }
    if mask is not None:
        loc = localisation(result.map, mask)
        row.update(energy_in_mask=loc.energy_in_mask, area_share=loc.area_share,
                   pointing_hit=float(loc.pointing_hit))
    for unit, unit_steps in (("pixel", curve_steps), ("frame", result.frames)):
        curve = deletion_insertion(model, clip, result.map, target, steps=unit_steps, unit=unit)
        row[f"deletion_auc_{unit}"] = curve.deletion_auc
        row[f"insertion_auc_{unit}"] = curve.insertion_auc
    return row, result


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
            low, high = bootstrap_interval(values, reps=reps, seed=seed)
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


PARTS_KEY = "key.json"


def _open_parts(out: Path, key: dict[str, object] | None) -> None:
    """Create out/parts, or check that the parts already there belong to the same scoring run."""
    import json

    parts = out / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    if key is None:
        return
    stored = parts / PARTS_KEY
    text = json.dumps(key, indent=2, sort_keys=True, default=str) + "\n"
    if stored.is_file() and stored.read_text() != text:
        raise ValueError(f"{out} holds parts of a different attribution run (other models, data or "
                         "settings); choose a new --out or delete it")
    stored.write_text(text)


def _score_items(
    models: dict[str, nn.Module], root: Path, items: Sequence, methods: Sequence[str], target: str | int,
    curve_steps: int, seed: int, bar: object, opts: dict[str, object],
) -> pd.DataFrame:
    """Per-clip metric rows of every model x method for some dataset items."""
    import zlib

    from workbench.probe import load_mask, mask_path
    from workbench.video import load_clips, video_info

    rows = []
    for item in items:
        relative = Path(item.path)
        has_mask = mask_path(root, relative).is_file()
        video_mask = load_mask(root, relative) if has_mask else None
        if video_mask is not None and video_mask.shape[0] != video_info(item.path)["num_frames"]:
            video_mask = None  # a mask that does not match its video would score nonsense
        clips = load_clips(item.path, [model.spec for model in models.values()])  # decoded once
        for (name, model), clip in zip(models.items(), clips):
            spec: ModelSpec = model.spec
            clip = clip.unsqueeze(0)
            names = spec.class_names
            label = names.index(item.label_name) if item.label_name in names else None
            predicted = predicted_class(model, clip)
            chosen = resolve_target(target, label, predicted, spec)
            mask = clip_mask(video_mask, spec) if video_mask is not None else None
            for method in methods:
                bar.set_postfix_str(f"{name} {method}")  # type: ignore[attr-defined]
                if chosen is None:
                    bar.update()  # type: ignore[attr-defined]
                    continue
                # seeded per clip x model x method (SmoothGrad's noise): a row does not depend on
                # which process scored it or what it scored before
                torch.manual_seed(seed + zlib.crc32(f"{relative}|{name}|{method}".encode()))
                row, _ = score_clip(model, clip, method, chosen, mask=mask, curve_steps=curve_steps, **opts)
                rows.append({"model": name, "scheme": spec.scheme, "method": method,
                             "clip": str(relative), "label": item.label_name,
                             "predicted": spec.class_names[predicted], **row})
                bar.update()  # type: ignore[attr-defined]
    return pd.DataFrame(rows)


def score_dataset(
    models: dict[str, nn.Module],
    data: str | Path,
    methods: Sequence[str],
    target: str | int = "true",
    max_clips: int | None = None,
    progress: bool = True,
    curve_steps: int = 16,
    *,
    out: str | Path | None = None,
    chunk_clips: int = 8,
    seed: int = 0,
    key: dict[str, object] | None = None,
    **opts: object,
) -> pd.DataFrame:
    """Per-clip metrics of every model x method over a dataset (localisation where masks exist).

    With `out`, each chunk of `chunk_clips` clips is written as out/parts/part-NNNNNN.parquet, so a
    killed run continues where it stopped (`key` identifies the run: parts of another are refused).
    Under torch.distributed (torchrun) the chunks are shared round robin between the ranks and every
    rank returns the merged table, the same a single process gives."""
    from tqdm import tqdm

    from workbench import distributed
    from workbench.datasets import open_dataset

    context = distributed.current()
    if context.distributed and out is None:
        raise ValueError("a distributed run needs an output directory: ranks share their parts through it")
    if chunk_clips < 1:
        raise ValueError(f"chunk_clips must be >= 1, got {chunk_clips}")
    dataset = open_dataset(data)
    root = Path(data)
    items = pick_items(dataset.items, max_clips)
    chunks = [items[i : i + chunk_clips] for i in range(0, len(items), chunk_clips)]
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        on_main(lambda: _open_parts(out_dir, key), ValueError)
    parts = Parts(out_dir)
    mine = distributed.shard(len(chunks), context)
    pending = parts.pending(mine)
    maps = len(models) * len(methods)
    with tqdm(total=sum(len(chunks[n]) for n in mine) * maps, desc="attribution", unit="map",
              initial=sum(len(chunks[n]) for n in mine if n not in pending) * maps,
              disable=not progress or not context.is_main) as bar:
        for number in pending:
            parts.save(number, _score_items(models, root, chunks[number], methods, target, curve_steps, seed,
                                            bar, opts))
    distributed.barrier()  # every rank's parts are on disk
    finished = [part for part in parts.read(len(chunks)) if not part.empty]
    return pd.concat(finished, ignore_index=True) if finished else pd.DataFrame()


@dataclass
class ClipExplanation:
    """Everything a view shows of one model x method on one video (plain data: picklable, cacheable)."""

    method: str
    target: int
    target_name: str
    predicted_name: str
    map: np.ndarray  # (T, H, W)
    frames: np.ndarray  # uint8 (T, H, W, 3): the model's input frames
    profile: np.ndarray  # (T,) share of attribution mass per frame
    spread: float
    metrics: dict[str, float]  # score_clip's row (localisation when the video has a probe mask)
    curve: Faithfulness  # pixel deletion/insertion
    seconds: float


def explain_video(
    model: nn.Module, video: str | Path, method: str, target: int, **opts: object
) -> ClipExplanation:
    """Attribute `target` on a video file and score it (mask from a probe dataset when there is one)."""
    from workbench.video import load_clip

    from .gates import probe_mask

    spec = model.spec
    clip = load_clip(video, spec)
    video_mask = probe_mask(video)
    mask = clip_mask(video_mask, spec) if video_mask is not None else None
    row, result = score_clip(model, clip, method, target, mask=mask, **opts)
    profile = temporal_profile(result.map)
    return ClipExplanation(
        method=method, target=target, target_name=spec.class_names[target],
        predicted_name=spec.class_names[predicted_class(model, clip)], map=result.map,
        frames=display_frames(clip, spec), profile=profile, spread=temporal_spread(profile), metrics=row,
        curve=deletion_insertion(model, clip, result.map, target), seconds=result.seconds,
    )
