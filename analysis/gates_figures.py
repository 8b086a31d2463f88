"""Plotly figures of GSM/GSF gates, routing, gate-motion alignment and interventions.

The Gates & Shifts page and `python -m workbench gates` draw every figure with these builders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .gates import (
    INTERVENTION_MEANING,
    TERM_MEANING,
    TERMS,
    GateReport,
    alignment_maps,
    channel_time_pair,
    direction,
    gate_maps,
)

DIVERGING = "RdBu"
TERM_COLORS = {"kept": "#bab0ac", "from_prev": "#4e79a7", "from_next": "#f28e2b"}
MODE_COLORS = {"zero": "#bab0ac", "plus": "#e15759", "minus": "#4e79a7", "tsm": "#59a14f"}
GROUP_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


def _short(layer: str) -> str:
    """`layer2.0.gsm` -> `layer2.0` (axis labels stay readable)."""
    return layer.rsplit(".", 1)[0] if layer.count(".") >= 2 else layer


def _layer_order(frame: pd.DataFrame) -> list[str]:
    ordered = frame.sort_values("layer_index") if "layer_index" in frame else frame
    return list(ordered["layer"].drop_duplicates())


def gate_time_figure(stats: pd.DataFrame) -> go.Figure:
    """Layer x time heatmap of the mean gate, one panel per group."""
    groups = sorted(stats["group"].unique())
    fig = make_subplots(1, len(groups), subplot_titles=[f"group {g}: {direction(g)}" for g in groups],
                        shared_yaxes=True)
    layers = _layer_order(stats)
    for col, group in enumerate(groups, start=1):
        table = stats[stats["group"] == group].pivot(index="layer", columns="time", values="mean").loc[layers]
        fig.add_trace(go.Heatmap(z=table.values, x=list(table.columns), y=[_short(n) for n in layers],
                                 zmin=-1, zmax=1, colorscale=DIVERGING, colorbar={"title": "mean gate"},
                                 showscale=col == 1,
                                 hovertemplate="%{y}, frame %{x}: mean gate %{z:.3f}<extra></extra>"),
                      1, col)
        fig.update_xaxes(title_text="frame", dtick=1, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Mean gate per layer and frame", height=320 + 18 * len(layers))
    return fig


def gate_layer_figure(stats: pd.DataFrame) -> go.Figure:
    """Per layer and group: mean and |mean| gate, and the share of positive vs negative gates."""
    # two short lines per subplot title: one line each ran into the other at common widths
    fig = make_subplots(1, 2, horizontal_spacing=0.12,
                        subplot_titles=("mean gate (bars)<br>mean |gate| (diamonds)",
                                        "share of positive gates (up)<br>and of negative gates (down)"))
    layers = _layer_order(stats)
    for group in sorted(stats["group"].unique()):
        per = stats[stats["group"] == group].groupby("layer")[
            ["mean", "abs_mean", "positive_share", "negative_share"]].mean().loc[layers]
        color = GROUP_COLORS[group % len(GROUP_COLORS)]
        name = f"group {group}: {direction(group)}"
        x = [_short(n) for n in layers]
        fig.add_trace(go.Bar(x=x, y=per["mean"], name=name, marker_color=color, offsetgroup=str(group),
                             legendgroup=name), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=per["abs_mean"], mode="markers", marker={"symbol": "diamond",
                                 "size": 10, "color": color, "line": {"width": 1, "color": "black"}},
                                 name=f"{name} |gate|", legendgroup=name, showlegend=False), 1, 1)
        fig.add_trace(go.Bar(x=x, y=per["positive_share"], marker_color=color, offsetgroup=str(group),
                             legendgroup=name, showlegend=False, name=f"{name} positive"), 1, 2)
        fig.add_trace(go.Bar(x=x, y=-per["negative_share"], marker_color=color, opacity=0.5,
                             offsetgroup=str(group), legendgroup=name, showlegend=False,
                             name=f"{name} negative"), 1, 2)
    fig.update_yaxes(range=[-1, 1], row=1, col=1)
    fig.update_yaxes(range=[-1, 1], title_text="share (negative below 0)", row=1, col=2)
    fig.update_layout(title="Gate statistics per layer", barmode="relative", height=420,
                      margin={"t": 110})
    return fig


def gate_histogram_figure(histogram: pd.DataFrame) -> go.Figure:
    """Distribution of gate values per layer (one panel per layer), one colour per group."""
    layers = list(histogram["layer"].drop_duplicates())
    fig = make_subplots(1, len(layers), subplot_titles=[_short(n) for n in layers], shared_yaxes=True)
    for col, layer in enumerate(layers, start=1):
        for group in sorted(histogram["group"].unique()):
            part = histogram[(histogram["layer"] == layer) & (histogram["group"] == group)]
            fig.add_trace(go.Bar(x=part["bin_center"], y=part["share"],
                                 name=f"group {group}: {direction(group)}",
                                 marker_color=GROUP_COLORS[group % len(GROUP_COLORS)], opacity=0.7,
                                 showlegend=col == 1, legendgroup=str(group)), 1, col)
        fig.update_xaxes(range=[-1, 1], title_text="gate", row=1, col=col)
    fig.update_yaxes(title_text="share of positions", row=1, col=1)
    fig.update_layout(title="Gate value distribution", barmode="overlay", bargap=0, height=340)
    return fig


def gate_overlay_figure(
    frames: np.ndarray, maps: np.ndarray, layer: str, time: int | None = None
) -> go.Figure:
    """Gate maps (G, T, S, S) over the frames (T, S, S, 3): one frame, or animated with a slider."""
    groups, steps = maps.shape[:2]
    fig = make_subplots(1, groups, subplot_titles=[f"group {g}: {direction(g)}" for g in range(groups)],
                        horizontal_spacing=0.04)

    def traces(t: int) -> list:
        out = []
        for g in range(groups):
            out.append(go.Image(z=frames[t], hoverinfo="skip"))
            out.append(go.Heatmap(z=maps[g, t], zmin=-1, zmax=1, colorscale=DIVERGING, opacity=0.55,
                                  showscale=g == 0, colorbar={"title": "gate"},
                                  hovertemplate="gate %{z:.2f}<extra></extra>"))
        return out

    first = 0 if time is None else time
    for i, trace in enumerate(traces(first)):
        fig.add_trace(trace, 1, i // 2 + 1)
    for g in range(groups):
        fig.update_xaxes(visible=False, row=1, col=g + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{g + 1 if g else ''}",
                         row=1, col=g + 1)
    title = f"Gates of {layer} over the frames"
    if time is None and steps > 1:
        fig.frames = [go.Frame(data=traces(t), name=str(t)) for t in range(steps)]
        fig.update_layout(
            sliders=[{"active": 0, "currentvalue": {"prefix": "frame "}, "steps": [
                {"label": str(t), "method": "animate",
                 "args": [[str(t)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]}
                for t in range(steps)]}],
            updatemenus=[{"type": "buttons", "showactive": False, "y": -0.15, "x": 0, "buttons": [
                {"label": "play", "method": "animate",
                 "args": [None, {"frame": {"duration": 400, "redraw": True}, "fromcurrent": True}]}]}])
    else:
        title += f" (frame {first})"
    fig.update_layout(title=title, height=420, meta={"figure": "gate_overlay"})
    return fig


def routing_heatmap_figure(routings: dict[str, pd.DataFrame]) -> go.Figure:
    """Layer x time heatmap of the share of energy arriving from neighbouring frames, per operator."""
    names = list(routings)
    fig = make_subplots(1, len(names), subplot_titles=names, shared_yaxes=True)
    top = max(float(r["moved_share"].max()) for r in routings.values())
    for col, name in enumerate(names, start=1):
        routing = routings[name]
        layers = _layer_order(routing)
        table = routing.pivot(index="layer", columns="time", values="moved_share").loc[layers]
        fig.add_trace(go.Heatmap(z=table.values, x=list(table.columns), y=[_short(n) for n in layers],
                                 zmin=0, zmax=max(top, 1e-6), colorscale="Viridis", showscale=col == 1,
                                 colorbar={"title": "moved"},
                                 hovertemplate="%{y}, frame %{x}: %{z:.1%} arrives from t±1<extra></extra>"),
                      1, col)
        fig.update_xaxes(title_text="frame", dtick=1, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Share of feature energy moved into each frame (from t-1 and t+1)",
                      height=320 + 18 * len(_layer_order(routings[names[0]])))
    return fig


def routing_bars_figure(routings: dict[str, pd.DataFrame]) -> go.Figure:
    """Per layer, stacked shares of kept / from t-1 / from t+1 (averaged over frames), per operator."""
    names = list(routings)
    fig = make_subplots(1, len(names), subplot_titles=names, shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        routing = routings[name]
        layers = _layer_order(routing)
        means = routing.groupby("layer")[[f"{t}_share" for t in TERMS]].mean().loc[layers]
        for term in TERMS:
            fig.add_trace(go.Bar(x=[_short(n) for n in layers], y=means[f"{term}_share"],
                                 name=TERM_MEANING[term],
                                 marker_color=TERM_COLORS[term], showlegend=col == 1, legendgroup=term,
                                 hovertemplate="%{x}: %{y:.1%}<extra>" + TERM_MEANING[term] + "</extra>"),
                          1, col)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="share of energy", row=1, col=1)
    fig.update_layout(title="Routing per layer (mean over frames)", barmode="stack", height=380)
    return fig


def channel_time_figure(pair: dict[str, np.ndarray], layer: str) -> go.Figure:
    """Channel x time: share of each channel's energy sent to t+1 (positive) or t-1 (negative)."""
    names = list(pair)
    fig = make_subplots(1, len(names), subplot_titles=names, shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        grid = pair[name]
        fig.add_trace(go.Heatmap(z=grid, x=list(range(grid.shape[1])), y=list(range(grid.shape[0])),
                                 zmin=-1, zmax=1, colorscale=DIVERGING, showscale=col == 1,
                                 colorbar={"title": "to t+1 (+)<br>to t-1 (−)"},
                                 hovertemplate="channel %{y}, frame %{x}: %{z:.2f}<extra></extra>"), 1, col)
        fig.update_xaxes(title_text="frame", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="channel", autorange="reversed", row=1, col=1)
    fig.update_layout(title=f"Where features go in {layer}: channel x time", height=460)
    return fig


def alignment_figure(alignment: pd.DataFrame) -> go.Figure:
    """Per layer: correlation of |gate| with motion and, with a mask, gate mass in the object vs its area."""
    has_mask = "gate_in_mask_share" in alignment
    titles = ["corr(|gate|, frame difference)"]
    if has_mask:
        titles.append("share of |gate| mass inside the object")
    fig = make_subplots(1, len(titles), subplot_titles=titles)
    x = [_short(n) for n in alignment["layer"]]
    fig.add_trace(go.Bar(x=x, y=alignment["motion_correlation"], name="motion correlation",
                         marker_color="#4e79a7"), 1, 1)
    fig.update_yaxes(range=[-1, 1], row=1, col=1)
    if has_mask:
        fig.add_trace(go.Bar(x=x, y=alignment["gate_in_mask_share"], name="gate mass in mask",
                             marker_color="#f28e2b"), 1, 2)
        fig.add_trace(go.Bar(x=x, y=alignment["mask_area"], name="mask area (uniform gates)",
                             marker_color="#bab0ac"), 1, 2)
        fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(title="Do gates follow motion and the moving object?", barmode="group", height=360)
    return fig


def alignment_maps_figure(maps: dict[str, np.ndarray], layer: str) -> go.Figure:
    """The maps behind the alignment numbers: rows |gate|, frame difference, mask; one column per frame."""
    names = list(maps)
    steps = next(iter(maps.values())).shape[0]
    fig = make_subplots(len(names), steps, row_titles=names, column_titles=[f"t={t}" for t in range(steps)],
                        horizontal_spacing=0.01, vertical_spacing=0.04)
    for row, name in enumerate(names, start=1):
        grid = maps[name]
        top = float(grid.max()) if grid.size and grid.max() > 0 else 1.0
        for t in range(steps):
            fig.add_trace(go.Heatmap(z=grid[t], zmin=0, zmax=top, colorscale="Viridis", showscale=False,
                                     hovertemplate=name + " %{z:.3f}<extra></extra>"), row, t + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(title=f"Gate magnitude, motion and object in {layer}", height=130 * len(names) + 90)
    return fig


def intervention_figure(table: pd.DataFrame, value: str = "probability_change") -> go.Figure:
    """Grouped bars: change of `value` per target layer and intervention mode."""
    shown = table[table["mode"] != "none"]
    targets = list(shown["target"].drop_duplicates())
    fig = go.Figure()
    for mode in shown["mode"].drop_duplicates():
        part = shown[shown["mode"] == mode].set_index("target").loc[targets]
        fig.add_trace(go.Bar(x=[_short(t) for t in targets], y=part[value], name=mode,
                             marker_color=MODE_COLORS.get(mode), hovertext=INTERVENTION_MEANING.get(mode),
                             hovertemplate="%{x}: %{y:+.3f}<br>%{hovertext}<extra>" + mode + "</extra>"))
    label = {"probability_change": "change in probability of the original prediction",
             "accuracy_change": "change in accuracy"}.get(value, value)
    name = "intervention_accuracy" if value == "accuracy_change" else "interventions"
    fig.update_layout(title=f"Gate interventions: {label}", barmode="group", height=380,
                      yaxis_title=label, legend_title="gates forced to", meta={"figure": name})
    return fig


def report_figures(report: GateReport, layer: str | None = None) -> dict[str, go.Figure]:
    """Every figure of a gate report by file-friendly name; layer-level figures for `layer` (default:
    the first gated layer). The page and the CLI export both draw these."""
    chosen = report.run.layer(layer) if layer else report.run.layers[0]
    size = report.frames.shape[1]
    figures = {
        "gate_overlay": gate_overlay_figure(report.frames, gate_maps(chosen, size), chosen.name),
        "gate_time": gate_time_figure(report.statistics),
        "gate_layers": gate_layer_figure(report.statistics),
        "gate_histogram": gate_histogram_figure(report.histogram),
        "routing_heatmap": routing_heatmap_figure(report.routing),
        "routing_bars": routing_bars_figure(report.routing),
        "channel_time": channel_time_figure(channel_time_pair(chosen), chosen.name),
        "alignment": alignment_figure(report.alignment),
        "alignment_maps": alignment_maps_figure(alignment_maps(chosen, report.clip, report.mask),
                                                chosen.name),
        "interventions": intervention_figure(report.interventions),
    }
    for name, figure in figures.items():
        figure.update_layout(meta={"figure": name})  # tests and reports find a figure by its name
    return figures
