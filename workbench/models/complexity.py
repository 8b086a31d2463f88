"""Parameters, FLOPs (FlopCounterMode) and CPU latency of every scheme on one backbone."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import build_model
from .schemes import available_schemes


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: torch.nn.Module, clip: torch.Tensor) -> int:
    """FLOPs of one forward pass (convolutions and matmuls; shifts and BN count 0)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(clip)
    return int(counter.get_total_flops())


def count_flops_of_shape(model: torch.nn.Module, clip_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward on a clip of `clip_shape`, computed on the meta device: shapes only, no
    arithmetic and no copy of the weights, so a full-size release model costs nothing to count."""
    meta = {name: torch.empty_like(t, device="meta")
            for name, t in (*model.named_parameters(), *model.named_buffers())}
    clip = torch.empty(clip_shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        torch.func.functional_call(model, meta, (clip,))
    return int(counter.get_total_flops())


def measure_latency(model: torch.nn.Module, clip: torch.Tensor, repeats: int = 5) -> float:
    """Median seconds of one inference forward pass, after one warm-up."""
    times = []
    with torch.inference_mode():
        model(clip)
        for _ in range(repeats):
            start = time.perf_counter()
            model(clip)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def zoo_table(
    backbone: str = "resnet18",
    frames: int = 8,
    size: int = 224,
    num_classes: int = 174,
    schemes: Iterable[str] | None = None,
    repeats: int = 3,
    latency: bool = True,
) -> pd.DataFrame:
    """One row per scheme: params, GFLOPs, both relative to tsn, and CPU latency (batch 1)."""
    rows = []
    clip = torch.randn(1, frames, 3, size, size)
    names = list(schemes or available_schemes())
    if "tsn" not in names:
        names.insert(0, "tsn")
    for scheme in names:
        model = build_model(scheme, backbone=backbone, num_classes=num_classes, frames=frames).eval()
        row = {
            "scheme": scheme,
            "params_M": count_parameters(model) / 1e6,
            "gflops": count_flops(model, clip) / 1e9,
        }
        if latency:
            row["latency_ms"] = 1000 * measure_latency(model, clip, repeats)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("scheme")
    base = table.loc["tsn"]
    table["params_vs_tsn"] = table["params_M"] / base["params_M"]
    table["flops_vs_tsn"] = table["gflops"] / base["gflops"]
    if latency:
        table["latency_vs_tsn"] = table["latency_ms"] / base["latency_ms"]
    table.attrs.update(backbone=backbone, frames=frames, size=size, num_classes=num_classes)
    return table.reset_index()
