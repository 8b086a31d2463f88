"""How long one pass of a model takes here: measured once per set of weights, what estimates multiply."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..device import model_device
from .views import per_weights, private_view


@dataclass(frozen=True)
class PassTime:
    """Seconds of one forward (no gradients) and of one forward + backward of one clip of the model's size."""

    forward: float
    backward: float

    def seconds(self, forwards: int = 0, backwards: int = 0) -> float:
        """Time of `forwards` plain passes and `backwards` passes with gradients."""
        return forwards * self.forward + backwards * self.backward


def _measure(model: nn.Module) -> PassTime:
    spec = model.spec
    view = private_view(model)
    clip = torch.zeros(1, spec.frames, 3, spec.input_size, spec.input_size, device=model_device(view))
    start = time.perf_counter()
    with torch.no_grad():
        view(clip)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    view(clip.requires_grad_(True))[0, 0].backward()
    backward = time.perf_counter() - start
    return PassTime(forward, backward)


def pass_time(model: nn.Module, guard: Callable[[], AbstractContextManager] | None = None) -> PassTime:
    """One forward and one forward + backward of this model, timed once (later calls reuse the times);
    the timing runs inside `guard()` when given (e.g. a turn in a server's queue of heavy work: it is a
    backward pass at the model's size)."""
    def measure(model: nn.Module) -> PassTime:
        with guard() if guard is not None else nullcontext():
            return _measure(model)

    return per_weights("pass_time", model, measure)


def about(seconds: float) -> str:
    """A rough duration for people: "about 40 s", "about 3 min"."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds > 10 else round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
