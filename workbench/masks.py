"""Object masks of probe clips, brought to the geometry of a model's input clip.

A probe video `<root>/<class>/<id>.mp4` has its per-frame ground-truth mask in `<root>/masks/<id>.npz`
(bool T_video, H, W). `clip_coverage` samples and crops it exactly like `load_clip` samples and crops
the frames (the same `sample_indices` and `preprocess`, with a neutral colour transform), giving the
share of each input pixel the object covers; `clip_mask` is that coverage thresholded at 0.5, so the
mask keeps its area share.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .models.spec import ModelSpec
from .probe import load_mask, mask_path
from .video import preprocess, sample_indices


def neutral_spec(spec: ModelSpec) -> ModelSpec:
    """The spec's geometry with an identity colour transform: preprocess then returns 0-1 RGB."""
    return dataclasses.replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_scale=1.0,
                               channel_order="RGB")


def probe_mask(video: str | Path) -> np.ndarray | None:
    """The ground-truth mask of a probe clip, or None when the video has none next to it."""
    path = Path(video)
    root = path.parent.parent
    if not mask_path(root, path).is_file():
        return None
    return load_mask(root, path)


def clip_coverage(video_mask: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """A video's bool mask (T_video, H, W) as the model sees it: float coverage (T, S, S) in [0, 1]."""
    mask = np.asarray(video_mask, dtype=bool)
    frames = mask[sample_indices(mask.shape[0], spec.frames, train=False)]
    picked = torch.from_numpy(frames.astype(np.uint8) * 255)
    as_rgb = picked[..., None].expand(*picked.shape, 3).contiguous()
    return preprocess(as_rgb, neutral_spec(spec))[:, 0]


def clip_mask(video_mask: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """A video's bool mask (T_video, H, W) as the model sees it: bool (T, S, S)."""
    return (clip_coverage(video_mask, spec) >= 0.5).numpy()
