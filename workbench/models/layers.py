"""The layers the probing analyses look at: one definition for the receptive field, the arrow of time and
the static/dynamic estimate.

A probe layer is a module of the model whose output (or input) is a feature map: folded per-frame
features (B*T, C, h, w) or (B*T, C) for 2D schemes, (B, C, T, h, w) for 3D ones, (B, C) once time is
pooled. Our ResNets and every release with `layerN` stages give the stem (`maxpool`, a no-op in the
small stem), each residual stage `layer1` ... `layerN` and the classifier (`fc`); its per-frame logits
for 2D schemes, whose mean over frames is the model's output (the consensus). MobileNetV2 releases give
each block of `features`; other releases (BN-Inception, Inception-V3) their backbone's pooled output
(the input of `new_fc`) and `new_fc`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

CLASSIFIER_NAMES = ("fc", "new_fc")  # the classifier module of our ResNets and of the release models
LOGITS = "logits"  # the layer name of the classifier's output


@dataclass(frozen=True)
class ProbeLayer:
    """One layer: its name in tables, the module that produces it, and whether it is that module's
    output or its (first) input."""

    name: str
    module: str
    take: str = "output"  # "output" | "input"


def _stage_layers(modules: dict[str, nn.Module]) -> list[ProbeLayer]:
    """`layer1` ... `layerN` (the shallowest module of each name) and the stem beside them."""
    stages: dict[int, str] = {}
    for name in modules:
        match = re.fullmatch(r"(?:(.*)\.)?layer(\d+)", name)
        if match and int(match.group(2)) not in stages:
            stages[int(match.group(2))] = name
    if 1 not in stages:
        return []
    parent = stages[1].rpartition(".")[0]
    stem = f"{parent}.maxpool" if parent else "maxpool"
    layers = [ProbeLayer("stem", stem)] if stem in modules else []
    return layers + [ProbeLayer(f"layer{n}", stages[n]) for n in sorted(stages)]


def _block_layers(modules: dict[str, nn.Module]) -> list[ProbeLayer]:
    """Each block of a `features` sequence (MobileNetV2)."""
    found = [name for name in modules if re.fullmatch(r"(?:.*\.)?features\.\d+", name)]
    return [ProbeLayer(".".join(name.split(".")[-2:]), name) for name in found]


def probe_layers(model: nn.Module) -> list[ProbeLayer]:
    """The model's probe layers in forward order, the classifier's output (`logits`) last."""
    modules = dict(model.named_modules())
    classifier = next((name for name in CLASSIFIER_NAMES if name in modules), None)
    if classifier is None:
        raise ValueError(f"{type(model).__name__} has no classifier named {' or '.join(CLASSIFIER_NAMES)}")
    layers = _stage_layers(modules) or _block_layers(modules)
    if not layers:  # a backbone without named stages: its pooled features, the classifier's input
        layers = [ProbeLayer("features", classifier, "input")]
    return [*layers, ProbeLayer(LOGITS, classifier)]


def layer_named(model: nn.Module, name: str) -> ProbeLayer:
    """The probe layer called `name`; ValueError naming the model's layers otherwise."""
    layers = probe_layers(model)
    for layer in layers:
        if layer.name == name:
            return layer
    raise ValueError(f"no layer {name!r}; the model's layers: {', '.join(x.name for x in layers)}")
