"""A model's input clip shown as pictures: undo the normalisation a ModelSpec applies."""

from __future__ import annotations

import numpy as np
import torch

from .models.spec import ModelSpec


def display_frames(clip: torch.Tensor, spec: ModelSpec) -> np.ndarray:
    """The model's input clip ((1,) T, 3, S, S, normalised) back as uint8 (T, S, S, 3) RGB."""
    x = clip.reshape(-1, *clip.shape[-3:]).detach().float().cpu()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    pixels = (x * std + mean) * (255.0 / spec.value_scale)
    if spec.channel_order == "BGR":
        pixels = pixels.flip(1)
    return pixels.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
