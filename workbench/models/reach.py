"""The analytic temporal receptive field: how many frames each way a layer's features can depend on.

Read from the model itself, in module order: every temporal operator (`TemporalOp`) adds its scheme
row's `operator_reach`, every 3D conv or pool adds (k_t - 1) / 2 * dilation_t of its temporal kernel, and
a temporal stride multiplies what every later module adds (measured in input frames). Sums over parallel
branches (a residual shortcut, GST's split, an Inception block) make this an upper bound; for our
ResNets, whose branches are a temporal path beside 1x1x1 or 1x3x3 ones, it is the exact reach, and it
equals the scheme table's own formula (`block_reach` summed over the temporal stages' blocks).
"""

from __future__ import annotations

from torch import nn

from .layers import ProbeLayer, probe_layers
from .schemes import Scheme, get_scheme
from .temporal import TemporalOp

CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 1}  # kxk convs of a residual block, by block type
_TEMPORAL_KERNELS = (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)


def block_reach(scheme: Scheme, block: str) -> int:
    """Frames each way one residual block of a temporal stage adds, from the scheme table's row."""
    return scheme.operator_reach + scheme.conv_reach * CONVS_PER_BLOCK[block]


def _first(value: int | tuple[int, ...]) -> int:
    """The temporal (first) entry of a 3D module's kernel/stride/dilation."""
    return int(value[0] if isinstance(value, tuple) else value)


def _temporal_steps(model: nn.Module) -> list[tuple[str, int, int]]:
    """(module name, frames each way it adds, its temporal stride) in module order; a temporal operator
    is one step (its inner convs are part of its reach, not added again)."""
    row = get_scheme(model.spec.scheme) if getattr(model, "spec", None) is not None else None
    steps: list[tuple[str, int, int]] = []
    inside: str | None = None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside + "."):
            continue
        inside = None
        if isinstance(module, TemporalOp):
            if row is None:
                raise ValueError(f"{name}: a temporal operator in a model without a scheme")
            steps.append((name, row.operator_reach, 1))
            inside = name
        elif isinstance(module, _TEMPORAL_KERNELS):
            kernel, stride = _first(module.kernel_size), _first(module.stride)
            dilation = _first(module.dilation) if isinstance(module, (nn.Conv3d, nn.MaxPool3d)) else 1
            steps.append((name, (kernel - 1) // 2 * dilation, stride))
    return steps


def layer_bounds(model: nn.Module, layers: list[ProbeLayer] | None = None) -> dict[str, int]:
    """Frames each way every probe layer's features can see (input frames), by layer name."""
    layers = layers if layers is not None else probe_layers(model)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    steps = [(order[name], reach, stride) for name, reach, stride in _temporal_steps(model)]
    bounds = {}
    for layer in layers:
        within = [i for name, i in order.items()
                  if name == layer.module or name.startswith(layer.module + ".")]
        # a layer's input is what came before its module, its output what its module's subtree ends with
        end = order[layer.module] - 1 if layer.take == "input" else max(within)
        total, scale = 0, 1
        for index, reach, stride in steps:
            if index > end:
                break
            total += reach * scale
            scale *= stride
        bounds[layer.name] = total
    return bounds
