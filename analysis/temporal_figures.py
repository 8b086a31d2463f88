"""Plotly figures (and one image strip) for frame-order experiments; shared by the page and reports.

Each figure names itself in `layout.meta["figure"]`, as in analysis.figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from .figures import model_colors
from .perturb import perturbation_title


def _models(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def accuracy_figure(summary: pd.DataFrame) -> go.Figure:
    """Accuracy per perturbation (bars, one per model) with 95% bootstrap intervals over videos."""
    bars = summary[summary["perturbation"] != "sweep"]
    colors = model_colors(_models(summary))
    fig = go.Figure()
    for model in _models(bars):
        rows = bars[bars["model"] == model]
        fig.add_bar(
            name=model, marker_color=colors[model],
            x=[perturbation_title(p) for p in rows["perturbation"]], y=rows["accuracy"],
            error_y={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["accuracy"],
                     "arrayminus": rows["accuracy"] - rows["ci_low"]},
            customdata=np.stack([rows["change"], rows["flip_rate"], rows["videos"]], axis=1),
            hovertemplate="%{x}: %{y:.1%} (change %{customdata[0]:+.1%}, flips %{customdata[1]:.1%}, "
                          "%{customdata[2]} videos)<extra>" + model + "</extra>",
        )
    fig.update_layout(
        barmode="group", meta={"figure": "temporal_accuracy"}, height=380,
        yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.05]},
        xaxis={"title": "frame order"}, legend={"title": "model"}, margin={"t": 30},
    )
    return fig


def sweep_figure(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against the Kendall-tau distance of the frame order (0 original, 1 reversed)."""
    sweep = summary[summary["perturbation"] == "sweep"].sort_values(["model", "level"], kind="stable")
    colors = model_colors(_models(summary))
    fig = go.Figure()
    for model in _models(sweep):
        rows = sweep[sweep["model"] == model]
        fig.add_scatter(
            name=model, mode="lines+markers", line={"color": colors[model]},
            x=rows["level"], y=rows["accuracy"],
            error_y={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["accuracy"],
                     "arrayminus": rows["accuracy"] - rows["ci_low"], "thickness": 1},
            hovertemplate="distance %{x:.2f}: %{y:.1%}<extra>" + model + "</extra>",
        )
    fig.update_layout(
        meta={"figure": "temporal_sweep"}, height=380, margin={"t": 30}, legend={"title": "model"},
        xaxis={"title": "Kendall-tau distance from the original order (fraction of frame pairs swapped)",
               "range": [-0.03, 1.03]},
        yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.05]},
    )
    return fig


def sensitivity_figure(sensitivity: pd.DataFrame, perturbation: str) -> go.Figure:
    """Heatmap classes x models: change in accuracy under one perturbation (red = lost accuracy)."""
    rows = sensitivity[sensitivity["perturbation"] == perturbation]
    classes = list(dict.fromkeys(rows["class_name"]))
    models = _models(rows)
    table = rows.pivot(index="class_name", columns="model", values="change").reindex(index=classes,
                                                                                     columns=models)
    kinds = rows.drop_duplicates("class_name").set_index("class_name")["kind"].reindex(classes)
    labels = [f"{name} ({kind})" for name, kind in zip(classes, kinds)]
    fig = go.Figure(go.Heatmap(
        z=table.to_numpy(), x=models, y=labels, zmin=-1, zmax=1, colorscale="RdBu",
        colorbar={"title": "change", "tickformat": "+.0%"},
        text=[[f"{v:+.0%}" if pd.notna(v) else "" for v in row] for row in table.to_numpy()],
        texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z:+.1%}<extra></extra>",
    ))
    fig.update_layout(
        meta={"figure": "temporal_sensitivity"}, height=max(300, 28 * len(classes) + 120),
        margin={"t": 30}, yaxis={"autorange": "reversed"}, xaxis={"title": "model"},
    )
    return fig


def reverse_confusion_figure(confusion: pd.DataFrame, model: str) -> go.Figure:
    """Heatmap true class x predicted class when the clip is played backwards."""
    shares = confusion.div(confusion.sum(axis=1).replace(0, 1), axis=0)
    fig = go.Figure(go.Heatmap(
        z=shares.to_numpy(), x=list(shares.columns), y=list(shares.index), zmin=0, zmax=1,
        colorscale="Blues", colorbar={"title": "share", "tickformat": ".0%"},
        customdata=confusion.to_numpy(),
        hovertemplate="true %{y} → predicted %{x}: %{z:.0%} (%{customdata} clips)<extra></extra>",
    ))
    fig.update_layout(
        meta={"figure": "reverse_confusion", "model": model}, height=max(320, 26 * len(shares) + 140),
        margin={"t": 30}, yaxis={"title": "true class (clip reversed)", "autorange": "reversed"},
        xaxis={"title": f"{model} predicts"},
    )
    return fig


def order_strip(frames: torch.Tensor, order: Sequence[int], gap: int = 2) -> np.ndarray:
    """The frames (uint8 T,H,W,3) side by side in `order`, as one uint8 image (for st.image)."""
    picked = frames[list(order)].numpy()
    count, height, width, _ = picked.shape
    strip = np.full((height, count * width + (count - 1) * gap, 3), 255, dtype=np.uint8)
    for position, image in enumerate(picked):
        left = position * (width + gap)
        strip[:, left : left + width] = image
    return strip
