"""Attribution of one clip: the map with every per-clip metric, for one model x method or for several
models and methods on one video (what the `attribute VIDEO` command and the Attribution page show)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.display import display_frames
from workbench.errors import OptionError
from workbench.masks import clip_mask, probe_mask
from workbench.models.memory import Budget
from workbench.models.spec import ModelSpec
from workbench.progress import Progress
from workbench.video import VideoSource, load_clip, load_clips

from .agreement import agreement_rows
from .faithfulness import Faithfulness, deletion_insertion
from .localisation import localisation
from .methods import METHODS, Attribution, attribute, default_window, predicted_class
from .profiles import temporal_profile, temporal_spread
from .sanity import randomization_check

__all__ = ["ClipExplanation", "ClipScore", "VideoAttribution", "attribute_video", "explain_passes",
    "explain_video", "resolve_target", "score_clip"]

# per method, its options: {"integrated_gradients": {"steps": 16}, ...}
MethodOptions = Mapping[str, Mapping[str, Any]]


@dataclass
class ClipScore:
    """Every per-clip metric of one model x method, with the attribution and its pixel curve."""

    row: dict[str, float]
    attribution: Attribution
    curve: Faithfulness  # pixel deletion/insertion


def score_clip(
    model: nn.Module,
    clip: torch.Tensor,
    method: str,
    target: int,
    mask: np.ndarray | None = None,
    curve_steps: int = 16,
    *,
    memory: Budget | int | str | None = None,
    **opts: Any,
) -> ClipScore:
    """Attribute `target` with `method` (its options in `opts`) and measure the map: temporal spread,
    localisation against `mask` when there is one, pixel and frame deletion/insertion areas; batches
    follow from the `memory` budget."""
    result = attribute(model, clip, method, target=target, memory=memory, **opts)
    row: dict[str, float] = {
        "target": target,
        "temporal_spread": temporal_spread(temporal_profile(result.map)),
        "seconds": result.seconds,
    }
    if mask is not None:
        loc = localisation(result.map, mask)
        row.update(energy_in_mask=loc.energy_in_mask, area_share=loc.area_share,
                   pointing_hit=float(loc.pointing_hit))
    curves = {}
    for unit, unit_steps in (("pixel", curve_steps), ("frame", result.frames)):
        curves[unit] = deletion_insertion(model, clip, result.map, target, steps=unit_steps, unit=unit,
                                          memory=memory)
        row[f"deletion_auc_{unit}"] = curves[unit].deletion_auc
        row[f"insertion_auc_{unit}"] = curves[unit].insertion_auc
    return ClipScore(row, result, curves["pixel"])


def resolve_target(
    choice: str | int | None, spec: ModelSpec, predicted: int, label: int | None = None,
    mirror_of: str = "predicted",
) -> int | None:
    """The class to explain: predicted (the default), true, mirror (of the predicted class, or of the
    true one with mirror_of="true"), a class name or an index. None when the choice has no answer for
    this clip (no true class, no mirror); OptionError for a class the model does not have."""
    if choice is None or choice == "predicted":
        return predicted
    if isinstance(choice, int):
        return choice
    if choice == "true":
        return label
    if choice == "mirror":
        base = label if mirror_of == "true" else predicted
        return None if base is None else spec.mirror_index(base)
    if choice in spec.class_names:
        return spec.class_names.index(choice)
    if choice.isdigit() and int(choice) < spec.num_classes:
        return int(choice)
    raise OptionError(f"unknown target class {choice!r} for a model with classes "
                      f"{', '.join(spec.class_names)}")


def explain_passes(method: str, spec: ModelSpec, curve_steps: int = 16, **opts: Any) -> tuple[int, int]:
    """(plain forwards, forward + backward passes) of one clip's explanation by `method` with its metrics:
    the method's own passes, the prediction, and the pixel and frame deletion/insertion curves."""
    options = METHODS[method].parse(opts)
    frames, size = spec.frames, spec.input_size
    forwards = 2 + 2 * (curve_steps + 1) + 2 * (frames + 1)  # target and prediction, both curves
    backwards = {"integrated_gradients": getattr(options, "steps", 0), "occlusion": 0, "temporal_ablation": 0,
                 "smoothgrad": getattr(options, "samples", 0)}.get(method, 1)
    if method == "integrated_gradients" and options.convergence_delta:
        forwards += 2
    elif method == "occlusion":
        window, stride = default_window(size)
        window, stride = options.window or window, options.stride or stride
        spots = ((max(frames - min(frames, options.window_frames), 0) // options.stride_frames + 1)
                 * ((size - window) // stride + 1) ** 2)
        forwards += spots
    elif method == "temporal_ablation":
        forwards += -(-frames // max(1, options.block)) + 1
    return forwards, backwards


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
    model: nn.Module, video: str | Path, method: str, target: int, *,
    memory: Budget | int | str | None = None, **opts: Any
) -> ClipExplanation:
    """Attribute `target` on a video file and score it (mask from a probe dataset when there is one)."""
    spec = model.spec
    clip = load_clip(video, spec)
    video_mask = probe_mask(video)
    mask = clip_mask(video_mask, spec) if video_mask is not None else None
    scored = score_clip(model, clip, method, target, mask=mask, memory=memory, **opts)
    profile = temporal_profile(scored.attribution.map)
    return ClipExplanation(
        method=method, target=target, target_name=spec.class_names[target],
        predicted_name=spec.class_names[predicted_class(model, clip)], map=scored.attribution.map,
        frames=display_frames(clip, spec), profile=profile, spread=temporal_spread(profile),
        metrics=scored.row, curve=scored.curve, seconds=scored.attribution.seconds,
    )


@dataclass
class VideoAttribution:
    """Several models and methods on one video: metric rows, maps, curves and agreements."""

    rows: pd.DataFrame  # one per model x method (the metrics, the target, the temporal profile)
    frames: dict[str, np.ndarray]  # model -> uint8 (T, S, S, 3) input frames
    attributions: dict[tuple[str, str], Attribution] = field(default_factory=dict)  # (model, method)
    curves: dict[tuple[str, str], Faithfulness] = field(default_factory=dict)
    agreements: pd.DataFrame = field(default_factory=pd.DataFrame)

    def arrays(self, model: str) -> dict[str, np.ndarray]:
        """One model's maps by method (and `<method>_raw` per-value attributions where there are)."""
        arrays: dict[str, np.ndarray] = {}
        for (name, method), result in self.attributions.items():
            if name == model:
                arrays[method] = result.map
                if result.raw is not None:
                    arrays[f"{method}_raw"] = result.raw
        return arrays


AGREEMENT_COLUMNS = ["between", "within", "a", "b", "rank_correlation"]


def attribute_video(
    models: Mapping[str, nn.Module],
    video: VideoSource,
    methods: Sequence[str],
    target: str | int | None = None,
    *,
    options: MethodOptions | None = None,
    curve_steps: int = 16,
    seed: int = 0,
    sanity: bool = False,
    progress: Progress | None = None,
    memory: Budget | int | str | None = None,
) -> VideoAttribution:
    """Attribute one video with every model and method: maps, metrics, curves and agreement between
    the methods of each model and between models under each method (models of one input size);
    `progress(done, total)` after each model x method.
    `target` is resolved per model (`resolve_target`; mirror: of the predicted class)."""
    options = options or {}
    video_mask = probe_mask(video) if isinstance(video, (str, Path)) else None
    rows, agreements = [], []
    result = VideoAttribution(pd.DataFrame(), {})
    clips = load_clips(video, [model.spec for model in models.values()])  # the video decoded once
    for (name, model), clip in zip(models.items(), clips):
        spec = model.spec
        clip = clip.unsqueeze(0)
        result.frames[name] = display_frames(clip, spec)
        predicted = predicted_class(model, clip)
        chosen = resolve_target(target, spec, predicted)
        if chosen is None:
            if target == "true":
                raise OptionError("--target true needs labels: use it with --data")
            raise OptionError(f"class {spec.class_names[predicted]!r} has no temporal mirror")
        mask = clip_mask(video_mask, spec) if video_mask is not None else None
        for method in methods:
            torch.manual_seed(seed)  # SmoothGrad's noise
            method_opts = dict(options.get(method, {}))
            scored = score_clip(model, clip, method, chosen, mask=mask, curve_steps=curve_steps,
                                memory=memory, **method_opts)
            row = dict(scored.row)
            if sanity:
                steps = randomization_check(model, clip, method, chosen, **method_opts)
                row["sanity_rank_corr"] = steps[-1].rank_correlation
            profile = temporal_profile(scored.attribution.map)
            rows.append({"model": name, "scheme": spec.scheme, "method": method,
                         "target_name": spec.class_names[chosen], "predicted": spec.class_names[predicted],
                         **row, "ig_delta": scored.attribution.delta,
                         "profile": json.dumps(np.round(profile, 5).tolist())})
            result.attributions[(name, method)] = scored.attribution
            result.curves[(name, method)] = scored.curve
            if progress is not None:
                progress(len(result.attributions), len(models) * len(methods))
        by_method = {m: result.attributions[(name, m)].map for m in methods}
        agreements += agreement_rows("methods", name, by_method)
    for method in methods:
        maps = {name: result.attributions[(name, method)].map for name in models}
        if len({m.shape for m in maps.values()}) == 1:  # models of one input size: comparable maps
            agreements += agreement_rows("models", method, maps)
    result.rows = pd.DataFrame(rows)
    result.agreements = pd.DataFrame(agreements, columns=AGREEMENT_COLUMNS)
    return result
