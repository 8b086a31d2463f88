"""Plotly figure builders: the app's pages and the reports draw the same figures from the same data.

Every figure names itself in `layout.meta["figure"]` (e.g. "history"), so tests and reports can
find a figure without relying on its position on the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from workbench.models import SCHEMES

from .schemes import OFFSETS, ROUTE_LEGEND, ROUTE_MEANING, ROUTES, Routing

PALETTE = qualitative.Plotly + qualitative.D3
# one colour per route, in ROUTES order: none, copy, gated, kernel, depthwise
ROUTE_COLORS = ("#f4f4f4", "#8fb8de", "#f28e2b", "#4e79a7", "#59a14f")
SEQUENTIAL = "Blues"
FOOTNOTES = {"gsf": "<br>* then mixed with the kept part by a learned fusion weight"}  # diagram hovers


def model_colors(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per model label (the same model has the same colour in every figure)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _discrete_scale(colors: Sequence[str]) -> list[list]:
    """A colorscale with one flat band per category (values 0..len-1)."""
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / len(colors), color], [(i + 1) / len(colors), color]]
    return scale


def scheme_diagram(
    routings: Sequence[Routing], costs: dict[str, str] | None = None, columns: int = 4
) -> go.Figure:
    """Per scheme, a channel-slice x source-frame grid: where a block's output at frame t comes from."""
    rows, cols = _grid(len(routings), columns)
    costs = costs or {}
    titles = []
    for routing in routings:
        cost = costs.get(routing.scheme)
        subtitle = f"{routing.scheme} · {cost}" if cost else routing.scheme
        titles.append(f"<b>{SCHEMES[routing.scheme].title}</b><br><sup>{subtitle}</sup>")
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.05,
        vertical_spacing=0.36 / rows if rows > 1 else 0.0,
    )
    x_labels = [f"t{offset:+d}" if offset else "t" for offset in OFFSETS]
    for i, routing in enumerate(routings):
        scheme = SCHEMES[routing.scheme]
        hover = np.vectorize(lambda r: ROUTE_MEANING[ROUTES[r]])(routing.routes)
        fig.add_trace(
            go.Heatmap(
                z=routing.routes,
                x=x_labels,
                y=routing.slice_labels,
                text=routing.text,
                texttemplate="%{text}",
                customdata=hover,
                hovertemplate=(
                    f"<b>{scheme.title}</b><br>output channels %{{y}} at frame t<br>"
                    f"from frame %{{x}}: %{{customdata}}{FOOTNOTES.get(scheme.name, '')}<extra></extra>"
                ),
                textfont={"size": 12},
                coloraxis="coloraxis",
                xgap=2,
                ygap=2,
                name=routing.scheme,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="")
    for row in range(1, rows + 1):
        fig.update_yaxes(showticklabels=True, row=row, col=1)
    fig.update_xaxes(side="bottom", tickfont={"size": 11})
    fig.update_layout(
        meta={"figure": "scheme_diagram"},
        coloraxis={
            "colorscale": _discrete_scale(ROUTE_COLORS),
            "cmin": -0.5,
            "cmax": len(ROUTES) - 0.5,
            "colorbar": {
                "title": {"text": "from that frame:", "side": "top"},
                "tickvals": list(range(len(ROUTES))),
                "ticktext": [ROUTE_LEGEND[r] for r in ROUTES],
                "orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.1 - 0.05 / rows, "yanchor": "top",
                "len": 0.9, "thickness": 14,
            },
        },
        height=270 * rows + 110,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def cost_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: parameters, FLOPs and latency of each model relative to TSN (same config)."""
    fig = go.Figure()
    bars = (("params_vs_tsn", "params"), ("flops_vs_tsn", "FLOPs"), ("latency_vs_tsn", "latency"))
    for column, name in bars:
        if column in table:
            fig.add_bar(
                x=table["model"], y=table[column], name=f"{name} × TSN",
                hovertemplate="%{x}: %{y:.2f}× TSN<extra>" + name + "</extra>",
            )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(
        meta={"figure": "cost"},
        barmode="group", height=360, yaxis_title="relative to TSN (same backbone, frames, size)",
        legend={"orientation": "h", "y": 1.12}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def accuracy_cost_figure(table: pd.DataFrame, metric: str = "temporal_accuracy") -> go.Figure:
    """One point per model: accuracy metric against FLOPs relative to TSN (marker size: params)."""
    fig = go.Figure()
    colors = model_colors(list(table["model"]))
    data = table.dropna(subset=[metric, "flops_vs_tsn"])
    positions = ("top center", "bottom center", "middle right", "middle left")  # neighbours often coincide
    for i, (_, row) in enumerate(data.iterrows()):
        fig.add_scatter(
            x=[row["flops_vs_tsn"]], y=[row[metric]], name=row["model"], mode="markers+text",
            text=[row["model"]], textposition=positions[i % len(positions)],
            marker={"size": 10 + 14 * min(2.0, np.nan_to_num(row["params_vs_tsn"], nan=1.0)),
                    "color": colors[row["model"]]},
            hovertemplate=(f"<b>{row['model']}</b><br>FLOPs %{{x:.2f}}× TSN<br>{metric} %{{y:.1%}}"
                           f"<br>params {row['params_M']:.3f} M<extra></extra>"),
        )
    fig.update_layout(
        meta={"figure": "accuracy_cost"},
        height=360, xaxis_title="FLOPs relative to TSN",
        yaxis={"title": metric.replace("_", " "), "tickformat": ".0%", "range": [-0.05, 1.1]},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def history_figure(history: pd.DataFrame) -> go.Figure:
    """Training curves side by side: loss per epoch, and train (dashed) / validation accuracy."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "accuracy (dashed: train)"),
                        horizontal_spacing=0.08)
    colors = model_colors(list(dict.fromkeys(history["model"])))
    for model, part in history.groupby("model", sort=False):
        color = colors[model]
        common = {"legendgroup": model, "mode": "lines+markers", "marker": {"size": 4}}
        if "train_loss" in part:
            fig.add_scatter(x=part["epoch"], y=part["train_loss"], name=model, line={"color": color},
                            row=1, col=1, **common)
        if "val_acc" in part:
            fig.add_scatter(x=part["epoch"], y=part["val_acc"], name=f"{model} val", showlegend=False,
                            line={"color": color}, row=1, col=2, **common)
        if "train_acc" in part:
            fig.add_scatter(x=part["epoch"], y=part["train_acc"], name=f"{model} train", showlegend=False,
                            line={"color": color, "dash": "dash"}, opacity=0.6, row=1, col=2, **common)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_layout(meta={"figure": "history"}, height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def per_class_figure(per_class: pd.DataFrame, class_kinds: dict[str, str] | None = None) -> go.Figure:
    """Heatmap of per-class accuracy: models x classes (temporal classes first if kinds are known)."""
    classes = list(per_class.columns)
    if class_kinds:
        classes.sort(key=lambda name: class_kinds.get(name) != "temporal")
    data = per_class[classes]
    fig = go.Figure(
        go.Heatmap(
            z=data.to_numpy(dtype=float), x=classes, y=list(data.index), zmin=0, zmax=1,
            colorscale=SEQUENTIAL, text=data.to_numpy(dtype=float), texttemplate="%{text:.0%}",
            hovertemplate="%{y} on %{x}: %{z:.1%}<extra></extra>", colorbar={"tickformat": ".0%"},
            xgap=1, ygap=1, name="per-class accuracy",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-40)
    fig.update_layout(
        meta={"figure": "per_class"}, height=130 + 32 * len(data), margin={"l": 10, "r": 10, "t": 20, "b": 10}
    )
    return fig


def confusion_figure(confusions: dict[str, pd.DataFrame], columns: int = 4) -> go.Figure:
    """Row-normalised confusion matrices side by side (rows: true class, columns: predicted)."""
    labels = list(confusions)
    rows, cols = _grid(len(labels), columns)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels, horizontal_spacing=0.03,
                        vertical_spacing=0.12 / max(1, rows - 1) if rows > 1 else 0.0)
    for i, label in enumerate(labels):
        counts = confusions[label]
        totals = counts.sum(axis=1).replace(0, np.nan)
        share = counts.div(totals, axis=0)
        fig.add_trace(
            go.Heatmap(
                z=share.to_numpy(dtype=float), x=list(counts.columns), y=list(counts.index),
                customdata=counts.to_numpy(), coloraxis="coloraxis", name=label,
                hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.0%} (%{customdata} clips)<extra></extra>",
            ),
            row=i // cols + 1, col=i % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="")
    fig.update_xaxes(showticklabels=False, ticks="")
    for row in range(1, rows + 1):
        fig.update_yaxes(showticklabels=True, tickfont={"size": 9}, title_text="true class", row=row, col=1)
    for col in range(1, cols + 1):
        fig.update_xaxes(title_text="predicted (hover for names)", title_font={"size": 11}, row=rows, col=col)
    fig.update_layout(
        meta={"figure": "confusion"},
        coloraxis={"colorscale": SEQUENTIAL, "cmin": 0, "cmax": 1, "colorbar": {"tickformat": ".0%"}},
        height=300 * rows + 40, margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def frames_figure(frames: np.ndarray, indices: Sequence[int] | None = None) -> go.Figure:
    """The sampled frames in a row (uint8 T,H,W,3), titled by their index in the video."""
    count = len(frames)
    titles = [f"frame {i}" for i in indices] if indices is not None else [f"#{i}" for i in range(count)]
    fig = make_subplots(rows=1, cols=count, subplot_titles=titles, horizontal_spacing=0.01)
    for i, frame in enumerate(frames):
        fig.add_trace(go.Image(z=frame, name=titles[i], hoverinfo="skip"), row=1, col=i + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(meta={"figure": "frames"}, height=200, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    return fig


def probability_figure(
    forward: pd.DataFrame,
    reverse: pd.DataFrame | None = None,
    true_class: str | None = None,
    mirror_class: str | None = None,
) -> go.Figure:
    """Class probabilities per model, as recorded and reversed; boxes on the true and mirror class."""
    panels = [("frames in recorded order", forward)]
    if reverse is not None:
        panels.append(("frames reversed", reverse))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], shared_yaxes=True,
                        horizontal_spacing=0.03)
    for i, (title, data) in enumerate(panels):
        fig.add_trace(
            go.Heatmap(
                z=data.to_numpy(dtype=float), x=list(data.columns), y=list(data.index),
                text=data.to_numpy(dtype=float), texttemplate="%{text:.0%}", textfont={"size": 9},
                coloraxis="coloraxis", name=title, xgap=1, ygap=1,
                hovertemplate="%{y}: P(%{x}) = %{z:.1%}<extra>" + title + "</extra>",
            ),
            row=1, col=i + 1,
        )
        boxes = [(true_class, {"color": "#d62728", "width": 2})]
        if i == 1:  # a model that reads frame order calls the reversed clip its mirror class
            boxes.append((mirror_class, {"color": "#ff7f0e", "width": 2, "dash": "dot"}))
        for name, line in boxes:
            if name is not None and name in list(data.columns):
                column = list(data.columns).index(name)
                fig.add_shape(type="rect", x0=column - 0.5, x1=column + 0.5, y0=-0.5, y1=len(data) - 0.5,
                              line=line, row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-40, tickfont={"size": 10})
    fig.update_layout(
        meta={"figure": "probability"},
        coloraxis={"colorscale": SEQUENTIAL, "cmin": 0, "cmax": 1, "colorbar": {"tickformat": ".0%"}},
        height=170 + 30 * len(forward), margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig
