"""Capture (or replace) named module inputs/outputs with forward hooks, never touching model code.

`capture` and `replace_outputs` are context managers that remove every hook they added on exit, also
when the body raises. They hook the module they are given, so give them a model nobody else is
running: `capture_forward` and `forward_with` do that for you, running one forward on a private view
of the model (`workbench.models.views`) that shares its weights, so a model shared between threads
or app sessions never carries a hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.device import model_device
from workbench.models.views import private_view

# (module, inputs, output) -> replacement output, or None to keep the output
Replacement = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def select_modules(
    model: nn.Module,
    names: Iterable[str] | None = None,
    types: tuple[type[nn.Module], ...] | type[nn.Module] | None = None,
) -> dict[str, nn.Module]:
    """Modules of `model` chosen by qualified name and/or type (both given: either matches)."""
    modules = dict(model.named_modules())
    wanted = set(names or ())
    missing = wanted - set(modules)
    if missing:
        raise KeyError(f"model has no module named {sorted(missing)[0]!r}")
    chosen = {}
    for name, module in modules.items():
        if name in wanted or (types is not None and isinstance(module, types)):
            chosen[name] = module
    return chosen


@dataclass
class Captured:
    """What a `capture` block recorded: detached output (and optionally first input) per module."""

    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything recorded so far (the hooks stay in place)."""
        self.outputs.clear()
        self.inputs.clear()


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


@contextmanager
def capture(
    model: nn.Module,
    names: Iterable[str] | None = None,
    types: tuple[type[nn.Module], ...] | type[nn.Module] | None = None,
    *,
    inputs: bool = False,
) -> Iterator[Captured]:
    """Record the output (and, with `inputs`, the first input) of the chosen modules while open.

    Tensors are detached clones: an in-place op later in the forward cannot change what was seen.
    A module called twice in one forward keeps its last call.
    """
    modules = select_modules(model, names, types)
    if not modules:
        raise ValueError("no module matches the requested names/types")
    record = Captured()
    handles = []

    def hook_for(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            out = _first_tensor(output)
            if out is not None:
                record.outputs[name] = out.detach().clone()
            if inputs:
                first = _first_tensor(args)
                if first is not None:
                    record.inputs[name] = first.detach().clone()

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        yield record
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replace_outputs(model: nn.Module, replacements: Mapping[str, Replacement]) -> Iterator[None]:
    """While open, the output of each named module is what its replacement function returns."""
    modules = select_modules(model, replacements)
    handles = []
    try:
        for name, fn in replacements.items():
            handles.append(modules[name].register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def capture_forward(
    model: nn.Module,
    clip: torch.Tensor,
    names: Iterable[str] | None = None,
    types: tuple[type[nn.Module], ...] | type[nn.Module] | None = None,
    *,
    inputs: bool = False,
) -> tuple[Captured, torch.Tensor]:
    """One no-grad forward of `clip` through a private view of `model`, recording the chosen modules;
    returns what was recorded and the output (on the CPU)."""
    view = private_view(model)
    with capture(view, names, types, inputs=inputs) as seen, torch.no_grad():
        output = view(clip.to(model_device(view)))
    return seen, output.cpu()


def forward_with(
    model: nn.Module, clip: torch.Tensor, replacements: Mapping[str, Replacement]
) -> torch.Tensor:
    """The no-grad output (on the CPU) of a private view of `model` whose named modules' outputs are
    replaced as `replace_outputs` says."""
    view = private_view(model)
    with replace_outputs(view, replacements), torch.no_grad():
        return view(clip.to(model_device(view))).cpu()
