"""How many frames are folded into the batch of a 2D video model's features, read from the clip.

A 2D scheme folds time into the batch, (B, T, C, H, W) -> (B*T, C, H, W), so a temporal operator
deep inside the network cannot see T in its input's shape. The model's forward reads T from the
clip and passes it down in a context variable: private to the calling thread (and asyncio task),
never stored on a module, so one model can serve clips of different lengths from several threads
at once. An operator called directly takes `frames=` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_FOLDED: ContextVar[int | None] = ContextVar("workbench_folded_frames", default=None)


@contextmanager
def folded_frames(frames: int) -> Iterator[None]:
    """While open, temporal operators in this thread unfold their batch into `frames` frames."""
    token = _FOLDED.set(int(frames))
    try:
        yield
    finally:
        _FOLDED.reset(token)


def frames_of(x: torch.Tensor, frames: int | None = None) -> int:
    """The frame count folded into `x`'s batch: `frames` if given, else the enclosing model's clip."""
    count = frames if frames is not None else _FOLDED.get()
    if count is None:
        raise RuntimeError("a temporal operator ran outside a video model's forward: pass frames=T")
    if count < 1 or x.shape[0] % count:
        raise ValueError(f"a batch of {x.shape[0]} folded frames does not split into clips of {count}")
    return count


def check_clip(x: torch.Tensor) -> tuple[int, int]:
    """(batch, frames) of a model input (B, T, 3, H, W); ValueError for anything else."""
    if x.dim() != 5 or x.shape[2] != 3:
        raise ValueError(f"expected a clip (batch, frames, 3, H, W), got shape {tuple(x.shape)}")
    return int(x.shape[0]), int(x.shape[1])
