"""Plotly figures of the probing analyses (receptive field, arrow of time, static/dynamic bias); shared by
the Probes page, the commands and the reports. Each figure names itself in `layout.meta["figure"]`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import _grid, model_colors

UNIT_COLORS = {"static": "#4e79a7", "dynamic": "#f28e2b", "joint": "#59a14f", "none": "#d3d3d3"}


def _models(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def _per_model(summary: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, str]]:
    """(model, its rows, its colour) for each model in the summary, in order of appearance."""
    colors = model_colors(_models(summary))
    for model in _models(summary):
        yield model, summary[summary["model"] == model], colors[model]


def _layers(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["layer"]))


def receptive_field_figure(table: pd.DataFrame, columns: int = 4) -> go.Figure:
    """Per model, a layer x offset heatmap of the normalised influence on a log scale (blank: exactly 0),
    the analytic bound drawn as red ticks at -bound and +bound."""
    models = _models(table)
    rows, cols = _grid(len(models), columns)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"<b>{m}</b>" for m in models],
                        horizontal_spacing=0.03, vertical_spacing=0.25 / rows if rows > 1 else 0.0)
    for i, model in enumerate(models):
        rows_of = table[table["model"] == model]
        layers = _layers(rows_of)
        grid = rows_of.pivot(index="layer", columns="offset", values="influence").loc[layers]
        values = grid.to_numpy()
        shown = np.log10(np.where(values > 0, values, np.nan))  # exact zeros stay blank
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(go.Heatmap(
            z=shown, x=list(grid.columns), y=layers, customdata=values, coloraxis="coloraxis",
            hovertemplate=f"<b>{model}</b> %{{y}}<br>input frame t%{{x:+d}}: %{{customdata:.2g}} of the "
                          "influence<extra></extra>"), row=row, col=col)
        bounds = rows_of.groupby("layer", sort=False)["bound"].first().loc[layers]
        fig.add_trace(go.Scatter(
            x=[*(-bounds - 0.5), *(bounds + 0.5)], y=[*layers, *layers], text=[*bounds, *bounds],
            mode="markers", showlegend=False,
            marker={"symbol": "line-ns-open", "size": 14, "color": "#d62728", "line": {"width": 2}},
            hovertemplate="analytic bound: ±%{text} frames<extra></extra>"), row=row, col=col)
    fig.update_xaxes(title_text="input frame - output frame", row=rows)
    fig.update_layout(meta={"figure": "receptive_field"}, height=240 * rows + 90, margin={"t": 50},
                      # from a visible light blue: blank cells (exact zeros) must stand out
                      coloraxis={"colorscale": [[0, "#d4e4f4"], [1, "#08306b"]], "cmin": -4, "cmax": 0,
                                 "colorbar": {"title": "share", "tickvals": [-4, -3, -2, -1, 0],
                                              "ticktext": ["1e-4", "0.001", "0.01", "0.1", "1"]}})
    return fig


def reach_figure(summary: pd.DataFrame) -> go.Figure:
    """Farthest offset with non-zero influence (bars) against the analytic bound (markers), per layer."""
    fig = go.Figure()
    for model, rows, color in _per_model(summary):
        fig.add_bar(name=model, x=rows["layer"], y=rows["reached"], marker_color=color,
                    offsetgroup=model, legendgroup=model,
                    hovertemplate="%{x}: influence reaches ±%{y} frames<extra>" + model + "</extra>")
        fig.add_scatter(name=f"{model} bound", x=rows["layer"], y=rows["bound"], mode="markers",
                        marker={"symbol": "line-ew-open", "size": 18, "color": "#222", "line": {"width": 2}},
                        offsetgroup=model, legendgroup=model, showlegend=False,
                        hovertemplate="%{x}: analytic bound ±%{y}<extra>" + model + "</extra>")
    fig.update_layout(barmode="group", meta={"figure": "reach"}, height=360, margin={"t": 30},
                      yaxis={"title": "frames each way"}, xaxis={"title": "layer"}, legend={"title": "model"},
                      scattermode="group")
    return fig


def arrow_figure(summary: pd.DataFrame) -> go.Figure:
    """Held-out accuracy of the forward-vs-reversed probe per layer, 95% bootstrap intervals over videos."""
    fig = go.Figure()
    for model, rows, color in _per_model(summary):
        fig.add_scatter(
            name=model, x=rows["layer"], y=rows["accuracy"], mode="lines+markers",
            line={"color": color},
            error_y={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["accuracy"],
                     "arrayminus": rows["accuracy"] - rows["ci_low"], "thickness": 1},
            hovertemplate="%{x}: %{y:.1%}<extra>" + model + "</extra>")
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance (order invisible)")
    fig.update_layout(meta={"figure": "arrow_of_time"}, height=380, margin={"t": 30},
                      yaxis={"title": "forward vs reversed accuracy", "tickformat": ".0%",
                             "range": [0.3, 1.05]},
                      xaxis={"title": "layer"}, legend={"title": "model"})
    return fig


def static_dynamic_figure(summary: pd.DataFrame) -> go.Figure:
    """Static and dynamic scores per layer (Kowal et al.'s estimate), one panel each."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["static (pairs sharing the look)",
                                                         "dynamic (pairs sharing the motion, order only)"])
    for col, factor in enumerate(("static", "dynamic"), start=1):
        for model, rows, color in _per_model(summary):
            fig.add_scatter(name=model, x=rows["layer"], y=rows[factor], mode="lines+markers",
                            line={"color": color}, legendgroup=model, showlegend=col == 1,
                            hovertemplate="%{x}: " + factor + " %{y:.3f}<extra>" + model + "</extra>",
                            row=1, col=col)
    fig.update_yaxes(title_text="score (correlation / total variance)", col=1)
    fig.update_layout(meta={"figure": "static_dynamic"}, height=380, margin={"t": 50},
                      legend={"title": "model"})
    return fig


def unit_share_figure(summary: pd.DataFrame) -> go.Figure:
    """Per model and layer, the share of units encoding static, dynamic, both or neither factor."""
    fig = go.Figure()
    x = [summary["model"].tolist(), summary["layer"].tolist()]
    for kind, color in UNIT_COLORS.items():
        if kind == "none":
            values = 1 - summary[["static_units", "dynamic_units", "joint_units"]].sum(axis=1)
        else:
            values = summary[f"{kind}_units"]
        fig.add_bar(name=kind, x=x, y=values, marker_color=color,
                    hovertemplate="%{x}: %{y:.0%} of units " + kind + "<extra></extra>")
    fig.update_layout(barmode="stack", meta={"figure": "unit_shares"}, height=380, margin={"t": 30},
                      yaxis={"title": "share of units", "tickformat": ".0%"},
                      legend={"title": "unit encodes"})
    return fig


def appearance_free_figure(summary: pd.DataFrame) -> go.Figure:
    """Accuracy of each scheme on the appearance-free probe, exact 95% intervals, chance as a line."""
    colors = model_colors(summary["scheme"].tolist())
    fig = go.Figure(go.Bar(
        x=summary["scheme"], y=summary["accuracy"], marker_color=[colors[s] for s in summary["scheme"]],
        error_y={"type": "data", "symmetric": False, "array": summary["ci_high"] - summary["accuracy"],
                 "arrayminus": summary["accuracy"] - summary["ci_low"]},
        customdata=summary[["ci_low", "ci_high", "clips"]].to_numpy(),
        hovertemplate="%{x}: %{y:.1%} (95% %{customdata[0]:.1%} to %{customdata[1]:.1%}, "
                      "%{customdata[2]} clips)<extra></extra>"))
    if not summary.empty:
        fig.add_hline(y=float(summary["chance"].iloc[0]), line_dash="dot", line_color="#888",
                      annotation_text="chance")
    fig.update_layout(meta={"figure": "appearance_free"}, height=360, margin={"t": 30}, showlegend=False,
                      yaxis={"title": "accuracy, fresh appearance-free seed", "tickformat": ".0%",
                             "range": [0, 1.05]}, xaxis={"title": "scheme"})
    return fig
