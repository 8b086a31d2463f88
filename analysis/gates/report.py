"""Every gate analysis of one model on one video: what the Gates page shows and `gates` exports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.display import display_frames
from workbench.masks import clip_coverage
from workbench.models.memory import Budget, measure_footprint
from workbench.video import VideoSource, load_clip

from .alignment import motion_alignment
from .capture import GateRun, capture_gates
from .interventions import INTERVENTIONS, intervention_table
from .routing import gate_routing, tsm_routing
from .stats import gate_histogram, gate_statistics

__all__ = ["GateReport", "gate_report", "summary_table"]


@dataclass
class GateReport:
    """All gate analyses of one model on one video (batch of one clip)."""

    run: GateRun
    frames: np.ndarray  # uint8 (T, S, S, 3), the model's input frames
    statistics: pd.DataFrame
    histogram: pd.DataFrame
    routing: dict[str, pd.DataFrame]  # operator ("gsm"/"gsf", "tsm") -> per layer and frame
    alignment: pd.DataFrame
    interventions: pd.DataFrame
    mask: torch.Tensor | None  # (1, T, S, S) object coverage, probe clips only
    clip: torch.Tensor  # (1, T, 3, S, S), the model input

    def tables(self) -> dict[str, pd.DataFrame]:
        """The report's tables by name, as `gates` writes them and reports show them."""
        return {"gate_stats": self.statistics, "gate_histogram": self.histogram,
                "routing": pd.concat(self.routing.values(), ignore_index=True), "alignment": self.alignment,
                "interventions": self.interventions}

    def gate_arrays(self) -> dict[str, np.ndarray]:
        """The raw gate tensors of every layer (B, G, T, h, w), by layer name."""
        return {layer.name: layer.gates.numpy() for layer in self.run.layers}


def gate_report(
    model: nn.Module, video: VideoSource, mask: np.ndarray | None = None,
    modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True,
    memory: Budget | int | str | None = None,
) -> GateReport:
    """Capture gates on `video` and compute statistics, routing, alignment and interventions; refused
    up front (MemoryBudgetError) when one clip's forward does not fit the `memory` budget."""
    spec = model.spec
    clip = load_clip(video, spec)
    # the capture keeps each gated layer's input and output: bounded by what a backward saves
    Budget.of(memory).batch(measure_footprint(model, tuple(clip.shape[-4:])), True, 1, what="gates")
    run = capture_gates(model, clip)
    clip_cover = clip_coverage(mask, spec).unsqueeze(0) if mask is not None else None
    kind = run.layers[0].kind
    return GateReport(
        run=run, frames=display_frames(clip, spec), statistics=gate_statistics(run),
        histogram=gate_histogram(run), routing={kind: gate_routing(run), "tsm": tsm_routing(run)},
        alignment=motion_alignment(run, clip, clip_cover),
        interventions=intervention_table(model, clip, modes, per_layer), mask=clip_cover, clip=clip,
    )


def summary_table(report: GateReport) -> pd.DataFrame:
    """One row per layer: gates, learned vs TSM routing, alignment, the all-zero-gate intervention."""
    stats = report.statistics.groupby("layer", sort=False).agg(
        mean_gate=("mean", "mean"), mean_abs_gate=("abs_mean", "mean"),
        positive_share=("positive_share", "mean"), saturated_share=("saturated_share", "mean"))
    kind = next(k for k in report.routing if k != "tsm")
    moved = {name: r.groupby("layer", sort=False)["moved_share"].mean() for name, r in report.routing.items()}
    stats[f"moved_share_{kind}"] = moved[kind]
    stats["moved_share_tsm"] = moved["tsm"]
    align = report.alignment.set_index("layer").drop(columns=["layer_index"])
    table = stats.join(align)
    zero = report.interventions[report.interventions["mode"] == "zero"].set_index("target")
    table["zero_gate_probability_change"] = zero["probability_change"].reindex(table.index)
    return table.reset_index()
