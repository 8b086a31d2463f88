"""Plotly figures of attribution results: overlay grids, temporal profiles, curves, agreement.

Like `analysis.figures`, every figure names itself in `layout.meta["figure"]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .attribution import Faithfulness, VideoAttribution, temporal_profile, temporal_spread
from .figures import model_colors

# A dark-to-bright heat ramp (black -> red -> yellow -> white) so high attribution reads at a glance.
HEAT_STOPS = np.array([[0, 0, 0], [200, 30, 0], [255, 200, 0], [255, 255, 255]], dtype=np.float64)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along the heat ramp (last axis added)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(HEAT_STOPS) - 1)
    low = np.floor(v).astype(int).clip(0, len(HEAT_STOPS) - 2)
    frac = (v - low)[..., None]
    return (HEAT_STOPS[low] * (1 - frac) + HEAT_STOPS[low + 1] * frac).astype(np.uint8)


def overlay(frames: np.ndarray, attribution_map: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """uint8 (T, H, W, 3) frames blended with a (T, H, W) map normalised over the whole clip.

    One scale for all frames (not per frame), so a frame the model ignores looks dark.
    """
    values = np.abs(np.asarray(attribution_map, dtype=np.float64))
    # the 99th percentile as the top: one hot pixel would otherwise make the rest black
    top = np.quantile(values, 0.99) if values.size else 0.0
    scaled = values / top if top > 0 else np.zeros_like(values)
    heat = heat_colors(scaled).astype(np.float64)
    weight = alpha * np.clip(scaled, 0.0, 1.0)[..., None] ** 0.5
    blended = frames.astype(np.float64) * (1 - weight) + heat * weight
    return blended.round().clip(0, 255).astype(np.uint8)


def overlay_grid(
    frames: dict[str, np.ndarray], maps: dict[str, np.ndarray], title: str = ""
) -> go.Figure:
    """Rows = models (or methods), columns = frames: each cell a frame with its attribution overlaid."""
    labels = list(maps)
    columns = max(maps[label].shape[0] for label in labels)
    fig = make_subplots(rows=len(labels), cols=columns, horizontal_spacing=0.005, vertical_spacing=0.02,
                        row_titles=labels, column_titles=[f"t={t}" for t in range(columns)])
    for row, label in enumerate(labels, start=1):
        images = overlay(frames[label], maps[label])
        for t, image in enumerate(images, start=1):
            fig.add_trace(go.Image(z=image, name=f"{label} t={t - 1}", hoverinfo="skip"), row=row, col=t)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=110 * len(labels) + 80, meta={"figure": "attribution_grid"},
                      margin={"l": 10, "r": 120, "t": 70, "b": 10})
    return fig


def profile_figure(profiles: dict[str, np.ndarray], spreads: dict[str, float] | None = None) -> go.Figure:
    """Share of attribution mass per frame, one line per model, with each temporal spread in the legend."""
    colors = model_colors(list(profiles))
    fig = go.Figure()
    for label, profile in profiles.items():
        name = label if spreads is None else f"{label} (spread {spreads[label]:.2f})"
        fig.add_trace(go.Scatter(x=np.arange(len(profile)), y=profile, mode="lines+markers", name=name,
                                 line={"color": colors[label]}))
    fig.update_layout(xaxis_title="frame", yaxis_title="share of attribution", yaxis_rangemode="tozero",
                      meta={"figure": "temporal_profile"}, height=320, margin={"t": 30})
    return fig


def curves_figure(curves: dict[str, Faithfulness]) -> go.Figure:
    """Deletion and insertion curves side by side, one line per model, AUC in the legend."""
    colors = model_colors(list(curves))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("deletion (lower is better)",
                                                        "insertion (higher is better)"))
    for label, curve in curves.items():
        color = colors[label]
        fig.add_trace(go.Scatter(x=curve.fractions, y=curve.deletion, mode="lines", line={"color": color},
                                 name=f"{label} (AUC {curve.deletion_auc:.3f})", legendgroup=label),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=curve.fractions, y=curve.insertion, mode="lines",
                                 line={"color": color, "dash": "dot"}, legendgroup=label,
                                 name=f"{label} (AUC {curve.insertion_auc:.3f})"), row=1, col=2)
    unit = next(iter(curves.values())).unit if curves else "pixel"
    fig.update_xaxes(title_text=f"share of {unit}s, most attributed first", range=[0, 1])
    fig.update_yaxes(title_text="class probability", range=[0, 1])
    fig.update_layout(meta={"figure": "deletion_insertion"}, height=340, margin={"t": 40})
    return fig


def agreement_figure(table: np.ndarray, names: Sequence[str], title: str = "") -> go.Figure:
    """Heatmap of pairwise rank correlations between maps."""
    fig = go.Figure(go.Heatmap(z=table, x=list(names), y=list(names), zmin=-1, zmax=1, colorscale="RdBu",
                               text=np.round(table, 2), texttemplate="%{text}", hoverinfo="skip"))
    fig.update_layout(title=title, meta={"figure": "agreement"}, height=120 + 40 * len(names),
                      yaxis_autorange="reversed", margin={"t": 40})
    return fig


def localisation_figure(summary: pd.DataFrame) -> go.Figure:
    """Energy-in-mask per model (x) and method (bars) with 95% intervals; the mask's area share as a
    dashed line: bars above it put more attribution on the object than a uniform map would."""
    fig = go.Figure()
    models = list(dict.fromkeys(summary["model"]))
    for method in dict.fromkeys(summary["method"]):
        rows = summary[summary["method"] == method].set_index("model").reindex(models)
        error = None
        if {"energy_in_mask_low", "energy_in_mask_high"} <= set(rows.columns):
            error = {"type": "data", "symmetric": False,
                     "array": (rows["energy_in_mask_high"] - rows["energy_in_mask"]).tolist(),
                     "arrayminus": (rows["energy_in_mask"] - rows["energy_in_mask_low"]).tolist()}
        fig.add_trace(go.Bar(x=models, y=rows["energy_in_mask"], name=method, error_y=error))
    area = summary.groupby("model", sort=False)["area_share"].mean().reindex(models)
    fig.add_trace(go.Scatter(x=models, y=area, mode="lines+markers", name="mask area share",
                             line={"color": "black", "dash": "dash"}))
    fig.update_layout(barmode="group", yaxis_title="share of attribution energy in the mask",
                      yaxis_range=[0, 1], meta={"figure": "localisation"}, height=420, margin={"t": 30})
    return fig


def video_figures(result: VideoAttribution, methods: Sequence[str]) -> dict[str, go.Figure]:
    """Per method, the figures of a one-video attribution: `<method>_grid` (maps over the frames of
    every model), `<method>_profile` (attribution per frame) and `<method>_curves` (deletion/insertion)."""
    figures: dict[str, go.Figure] = {}
    for method in methods:
        names = [name for name in result.frames if (name, method) in result.attributions]
        maps = {name: result.attributions[(name, method)].map for name in names}
        profiles = {name: temporal_profile(m) for name, m in maps.items()}
        spreads = {name: temporal_spread(p) for name, p in profiles.items()}
        figures[f"{method}_grid"] = overlay_grid({n: result.frames[n] for n in names}, maps, title=method)
        figures[f"{method}_profile"] = profile_figure(profiles, spreads)
        figures[f"{method}_curves"] = curves_figure({n: result.curves[(n, method)] for n in names})
    return figures
