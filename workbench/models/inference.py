"""Running a model over a batch of clips: one helper for device, no-grad, batching and precision."""

from __future__ import annotations

import torch
from torch import nn

from ..allocator import release_after_pass
from ..device import autocast, model_device
from .memory import Budget, measure_footprint


def predict_logits(
    model: nn.Module, clips: torch.Tensor, batch_size: int | None = None, amp: torch.dtype | None = None,
    memory: Budget | int | str | None = None,
) -> torch.Tensor:
    """float32 logits (N, classes) on the CPU of clips (N, T, 3, H, W), `batch_size` clips per pass
    (all at once by default; with a `memory` budget, as many as it holds), on the model's device, under
    inference mode (and autocast with `amp`)."""
    device = model_device(model)
    size = batch_size or max(1, clips.shape[0])
    if batch_size is None and memory is not None:
        size = Budget.of(memory).batch(measure_footprint(model, tuple(clips.shape[-4:])), False, size,
                                       what="a forward pass")
    out = []
    with torch.inference_mode():
        for start in range(0, clips.shape[0], size):
            batch = clips[start : start + size].to(device, non_blocking=True)
            with autocast(device, amp):
                out.append(model(batch).float().cpu())
            release_after_pass()  # under the opt-in kept blocks: they pile up by batch otherwise
    if not out:
        raise ValueError("no clips to run")
    return torch.cat(out)
