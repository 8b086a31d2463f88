"""Temporal routing: how much feature energy each temporal operator moves into frame t from t-1 and
t+1 versus keeps, for learned gates (GSM/GSF) and TSM's hard-wired shift, on the same axes.

One formula covers both. Each channel c at frame t has a backward weight b (the part sent to t-1)
and a forward weight f (the part sent to t+1); the operator output at t is
    (1 - b_t - f_t) * x_t  +  b_t+1 * x_t+1  +  f_t-1 * x_t-1.
GSM: b = gate on even groups' channels, f = gate on odd groups' channels. TSM: b = 1 on the first
fold channels, f = 1 on the next fold. Energy = sum of squares of each of the three terms over
batch, channels and positions; shares are each term's energy over the sum of the three (cross terms
are left out, so shares add up to 1 and a term's share does not depend on the others' signs). For
GSF this is the gate-shift stage, before its learned fusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.models.temporal import TemporalShift

from ..hooks import capture_forward
from .capture import GateRun, LayerGates, capture_gates

__all__ = ["TERMS", "TERM_MEANING", "channel_time", "channel_time_pair", "gate_routing", "gate_weights",
    "model_routing", "routing_energy", "shift_model_routing", "shift_weights", "tsm_routing"]

TERMS = ("kept", "from_prev", "from_next")
TERM_MEANING = {"kept": "kept at t", "from_prev": "arrives from t-1", "from_next": "arrives from t+1"}


def gate_weights(layer: LayerGates) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward and forward weights (B, T, C, h, w) of a gated layer's channels."""
    gates = layer.gates.permute(0, 2, 1, 3, 4)  # (B, T, G, h, w)
    b, t, groups, h, w = gates.shape
    per = layer.before.shape[2] // groups
    even = torch.tensor([g % 2 == 0 for g in range(groups)]).view(1, 1, groups, 1, 1)
    back = torch.where(even, gates, torch.zeros_like(gates))
    fwd = torch.where(even, torch.zeros_like(gates), gates)
    spread = (b, t, groups, per, h, w)
    return (back.unsqueeze(3).expand(spread).reshape(b, t, groups * per, h, w),
            fwd.unsqueeze(3).expand(spread).reshape(b, t, groups * per, h, w))


def shift_weights(x: torch.Tensor, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """TSM's fixed backward/forward weights for features x (B, T, C, h, w): 1 on fold channels each."""
    channels = x.shape[2]
    back = torch.zeros(1, 1, channels, 1, 1)
    fwd = torch.zeros(1, 1, channels, 1, 1)
    back[:, :, :fold] = 1.0
    fwd[:, :, fold : 2 * fold] = 1.0
    return back.expand_as(x), fwd.expand_as(x)


def routing_energy(x: torch.Tensor, back: torch.Tensor, fwd: torch.Tensor) -> dict[str, np.ndarray]:
    """Energy per frame t of the kept, from-(t-1) and from-(t+1) terms: term -> (T,) array."""
    dims = (0, 2, 3, 4)
    kept = (((1 - back - fwd) * x) ** 2).sum(dim=dims)
    sent_back = ((back * x) ** 2).sum(dim=dims)  # leaves t towards t-1
    sent_fwd = ((fwd * x) ** 2).sum(dim=dims)  # leaves t towards t+1
    zero = kept.new_zeros(1)
    from_next = torch.cat((sent_back[1:], zero))  # frame t receives what t+1 sent back
    from_prev = torch.cat((zero, sent_fwd[:-1]))  # frame t receives what t-1 sent forward
    return {"kept": kept.double().numpy(), "from_prev": from_prev.double().numpy(),
            "from_next": from_next.double().numpy()}


def _rows(operator: str, layer: str, index: int, energy: dict[str, np.ndarray]) -> list[dict]:
    total = sum(energy.values())
    rows = []
    for t in range(len(total)):
        row = {"operator": operator, "layer": layer, "layer_index": index, "time": t}
        for term in TERMS:
            row[f"{term}_energy"] = float(energy[term][t])
            row[f"{term}_share"] = float(energy[term][t] / total[t]) if total[t] > 0 else float("nan")
        row["moved_share"] = row["from_prev_share"] + row["from_next_share"]
        rows.append(row)
    return rows


def gate_routing(run: GateRun) -> pd.DataFrame:
    """Learned routing of every gated layer, per time step (one row per layer and frame)."""
    rows = []
    for index, layer in enumerate(run.layers):
        rows += _rows(layer.kind, layer.name, index, routing_energy(layer.before, *gate_weights(layer)))
    return pd.DataFrame(rows)


def tsm_routing(run: GateRun, fraction: float = 1 / 8) -> pd.DataFrame:
    """TSM's fixed routing applied to the same captured features (same layers and frames)."""
    rows = []
    for index, layer in enumerate(run.layers):
        fold = int(layer.before.shape[2] * fraction)
        energy = routing_energy(layer.before, *shift_weights(layer.before, fold))
        rows += _rows("tsm", layer.name, index, energy)
    return pd.DataFrame(rows)


def shift_model_routing(model: nn.Module, clip: torch.Tensor) -> pd.DataFrame:
    """Routing of a real TSM model's shift operators on its own features."""
    ops = [(n, m) for n, m in model.named_modules() if isinstance(m, TemporalShift)]
    if not ops:
        raise ValueError("model has no TSM shift operators")
    seen, _ = capture_forward(model, clip, [n for n, _ in ops], inputs=True)
    rows = []
    for index, (name, op) in enumerate(ops):
        x = seen.inputs[name].cpu().reshape(clip.shape[0], clip.shape[1], *seen.inputs[name].shape[1:])
        rows += _rows("tsm", name, index, routing_energy(x, *shift_weights(x, op.fold)))
    return pd.DataFrame(rows)


def model_routing(model: nn.Module, clip: torch.Tensor) -> pd.DataFrame:
    """Routing of any model with GSM/GSF gates or TSM shifts."""
    if any(isinstance(m, TemporalShift) for m in model.modules()):
        return shift_model_routing(model, clip)
    return gate_routing(capture_gates(model, clip))


def channel_time(x: torch.Tensor, back: torch.Tensor, fwd: torch.Tensor) -> np.ndarray:
    """Where features go, (C, T): share of channel c's energy at t sent to t+1 (positive) or to t-1
    (negative), i.e. sum (f x)^2 - sum (b x)^2 over batch and positions, over sum x^2."""
    dims = (0, 3, 4)
    energy = (x**2).sum(dim=dims)
    signed = ((fwd * x) ** 2).sum(dim=dims) - ((back * x) ** 2).sum(dim=dims)
    share = torch.where(energy > 0, signed / energy.clamp_min(1e-30), torch.zeros_like(energy))
    return share.transpose(0, 1).double().numpy()


def channel_time_pair(layer: LayerGates, fraction: float = 1 / 8) -> dict[str, np.ndarray]:
    """Channel x time routing of one gated layer and of TSM on the same features."""
    fold = int(layer.before.shape[2] * fraction)
    return {layer.kind: channel_time(layer.before, *gate_weights(layer)),
            "tsm": channel_time(layer.before, *shift_weights(layer.before, fold))}
