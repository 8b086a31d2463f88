"""Adebayo et al.'s model-randomisation check: do the maps change when the last layers are random?"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .agreement import rank_correlation
from .methods import attribute

__all__ = ["SanityStep", "last_layers", "randomization_check", "randomized_copy"]


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
