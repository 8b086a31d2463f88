"""The spatial feature stages of any loadable model: where Grad-CAM (and any layer method) looks.

A feature stage is a named module whose output is a spatial feature map, folded per frame
(B*T, C, h, w) for 2D schemes or (B, C, T, h, w) for 3D ones, listed in forward order. The first rule
that finds any names the candidates:
- `layer1` ... `layerN`: our ResNets of every scheme, the official ResNet releases, torchvision and
  MMAction2 ResNets (the rule of `workbench.models.layers`, without the stem);
- the stages a backbone declares (`stage_names`: each BN-Inception / Inception-V3 block, an identity
  over its concatenated branches);
- else the trunk's top-level children that hold a convolution: MobileNetV2's `features` blocks, S3D's
  conv and mixed units, C3D's convs, and any other CNN.
A traced forward on the meta device (no memory, no arithmetic) keeps the candidates whose output is a
spatial map at the model's own clip size, in the order they run. The default target is the last one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import AnalysisError, OptionError
from .layers import ProbeLayer, _stage_layers
from .views import meta_view, per_weights

__all__ = ["default_stage", "feature_stage", "feature_stages", "stage_names"]

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, CONVS) for m in module.modules())


def _declared(modules: dict[str, nn.Module]) -> list[ProbeLayer]:
    """Stages a backbone names itself (`stage_names`), by their block names."""
    for path, module in modules.items():
        names = getattr(module, "stage_names", None)
        if names:
            prefix = f"{path}." if path else ""
            return [ProbeLayer(name, prefix + name) for name in names if prefix + name in modules]
    return []


def _trunk_children(model: nn.Module) -> list[ProbeLayer]:
    """The children holding a convolution of the trunk: the model, or the one child holding every conv
    (a wrapper's `base_model`, a backbone's `features` sequence), descended into."""
    path, trunk = "", model
    while True:
        holders = [(name, child) for name, child in trunk.named_children() if _has_conv(child)]
        if len(holders) != 1 or not any(True for _ in holders[0][1].children()):
            break
        name, trunk = holders[0]
        path = f"{path}.{name}" if path else name
    short = path.rpartition(".")[2]
    return [ProbeLayer(f"{short}.{name}" if short else name, f"{path}.{name}" if path else name)
            for name, child in trunk.named_children() if _has_conv(child)]


RULES: tuple[Callable[[nn.Module, dict[str, nn.Module]], list[ProbeLayer]], ...] = (
    lambda model, modules: [layer for layer in _stage_layers(modules) if layer.name != "stem"],
    lambda model, modules: _declared(modules),
    lambda model, modules: _trunk_children(model),
)


def _output_shapes(model: nn.Module, names: list[str]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape) of the named modules in the order a forward of one clip calls them."""
    spec = getattr(model, "spec", None)
    frames, size = (spec.frames, spec.input_size) if spec is not None else (8, 224)
    shadow = meta_view(model)
    modules = dict(shadow.named_modules())
    seen: dict[str, tuple[int, ...]] = {}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                seen.setdefault(name, tuple(output.shape))
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            shadow(torch.empty(1, frames, 3, size, size, device="meta"))
    except (RuntimeError, ValueError, NotImplementedError, TypeError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise AnalysisError(f"cannot trace {type(model).__name__} on {frames} frames of {size} px to find "
                            f"its feature layers ({reason})") from None
    finally:
        for handle in handles:
            handle.remove()
    return list(seen.items())


def _spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) in (4, 5) and shape[-1] * shape[-2] > 1


def _find(model: nn.Module) -> list[ProbeLayer]:
    modules = dict(model.named_modules())
    for rule in RULES:
        candidates = rule(model, modules)
        if not candidates:
            continue
        by_module = {layer.module: layer for layer in candidates}
        order = _output_shapes(model, list(by_module))
        found = [by_module[name] for name, shape in order if _spatial(shape)]
        if found:
            return found
    return []


def feature_stages(model: nn.Module) -> list[ProbeLayer]:
    """The model's spatial feature stages in forward order (found once per set of weights)."""
    return list(per_weights("feature_stages", model, _find))


def stage_names(model: nn.Module) -> list[str]:
    """The names of the model's feature stages, in forward order (what a layer option accepts)."""
    return [layer.name for layer in feature_stages(model)]


def default_stage(model: nn.Module) -> ProbeLayer:
    """The last spatial feature stage: Grad-CAM's target when none is named."""
    stages = feature_stages(model)
    if not stages:
        raise AnalysisError(f"{type(model).__name__} has no module whose output is a spatial feature map")
    return stages[-1]


def feature_stage(model: nn.Module, name: str | None = None) -> ProbeLayer:
    """The stage called `name` (its short name or its module path; None: the default); an OptionError
    listing the model's stages for a name it does not have."""
    if name is None:
        return default_stage(model)
    stages = feature_stages(model)
    for layer in stages:
        if name in (layer.name, layer.module):
            return layer
    if name in dict(model.named_modules()):  # any module may be asked for by its full path
        return ProbeLayer(name, name)
    valid = ", ".join(layer.name for layer in stages) or "none"
    last = f" (default {stages[-1].name})" if stages else ""
    raise OptionError(f"model has no layer {name!r}; its feature layers: {valid}{last}")
