"""Private views of a shared model: somewhere to attach hooks without touching what others run.

The app keeps one instance of each model for every session and thread. An analysis that attaches
hooks (gate capture, interventions, Captum's Grad-CAM and Guided Backprop) must not attach them to
that instance: a forward running at the same time in another thread would pass through them. A view
is a copy of the module tree that shares every parameter and buffer with the original (no tensor is
copied; building one costs milliseconds), so hooks on the view are seen only by forwards of the view.
"""

from __future__ import annotations

import copy
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn


def meta_view(model: nn.Module) -> nn.Module:
    """A structural copy of `model` in eval mode whose tensors live on the meta device: a forward on it
    computes shapes only (no memory, no arithmetic), to check a clip size or trace what runs."""
    memo: dict[int, object] = {}
    for tensor in model.parameters():
        memo[id(tensor)] = nn.Parameter(torch.empty_like(tensor, device="meta"), tensor.requires_grad)
    for tensor in model.buffers():
        memo[id(tensor)] = torch.empty_like(tensor, device="meta")
    return copy.deepcopy(model, memo).eval()


def private_view(model: nn.Module) -> nn.Module:
    """A structural copy of `model` in eval mode sharing its weights; hooks on it stay private."""
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    view = copy.deepcopy(model, shared)
    return view.eval()


T = TypeVar("T")
# (what, id(first parameter)) -> (that parameter, weakly; the model's type; the value). Tensors compare
# by value, so they cannot key a WeakKeyDictionary; the entry goes with the parameter.
_MEMO: dict[tuple[str, int], tuple[weakref.ref, type, Any]] = {}
_MEMO_LOCK = threading.Lock()


def per_weights(what: str, model: nn.Module, compute: Callable[[nn.Module], T]) -> T:
    """`compute(model)`, worked out once per set of weights: a private view shares its model's weights,
    and so its answer (the feature stages, the time of one pass)."""
    key = next(model.parameters(), None)
    if key is None:
        return compute(model)
    slot = (what, id(key))
    with _MEMO_LOCK:
        cached = _MEMO.get(slot)
    if cached is not None and cached[0]() is key and cached[1] is type(model):
        return cached[2]
    value = compute(model)
    with _MEMO_LOCK:
        _MEMO[slot] = (weakref.ref(key), type(model), value)
    weakref.finalize(key, _MEMO.pop, slot, None)
    return value
