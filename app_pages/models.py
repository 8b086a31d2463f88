"""Models page: cost and accuracy per scheme, how each mixes time, training curves, per-class
results and predictions on the chosen clip, for the models chosen in the sidebar."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import figures, zoo
from analysis.schemes import scheme_routing
from app_pages import shared
from workbench.models import SCHEMES

PERCENT = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
TABLE_COLUMNS = {  # shown in this order; the rest of the table (kind, latency in ms...) is data only
    "model": st.column_config.TextColumn("model", pinned=True),
    "title": st.column_config.TextColumn("scheme"),
    "params_M": st.column_config.NumberColumn("params (M)", format="%.3f", width="small"),
    "gflops": st.column_config.NumberColumn("GFLOPs", format="%.3f", width="small"),
    "params_vs_tsn": st.column_config.NumberColumn("params ×TSN", format="%.2f", width="small"),
    "flops_vs_tsn": st.column_config.NumberColumn("FLOPs ×TSN", format="%.2f", width="small"),
    "latency_vs_tsn": st.column_config.NumberColumn("latency ×TSN", format="%.2f", width="small",
                                                    help="median of interleaved runs, one CPU thread"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="percent", width="small"),
    "temporal_accuracy": st.column_config.NumberColumn("temporal", format="percent", width="small",
                                                       help="accuracy on the temporal (mirror-pair) classes"),
    "static_accuracy": st.column_config.NumberColumn("static", format="percent", width="small",
                                                     help="accuracy on the static (shape) classes"),
    "pair_accuracy": st.column_config.NumberColumn("in pair", format="percent", width="small",
                                                   help="accuracy within a mirror pair (chance: 50%)"),
    "reverse_to_mirror": st.column_config.NumberColumn("rev→mirror", format="percent", width="small",
                                                       help="reversed clips called the mirror class"),
    "measured_on": st.column_config.TextColumn("accuracy measured on"),
}
CONFIG_COLUMNS = ("backbone", "frames", "size")


def shown_columns(table: pd.DataFrame) -> list[str]:
    """Table columns worth a column: a value shared by every row goes to the caption instead."""
    varying = [c for c in (*CONFIG_COLUMNS, "measured_on") if table[c].nunique(dropna=False) > 1]
    columns = ["model", "title", *[c for c in CONFIG_COLUMNS if c in varying]]
    columns += [c for c in TABLE_COLUMNS if c not in ("model", "title", "measured_on")]
    return columns + (["measured_on"] if "measured_on" in varying else [])


def shared_values(table: pd.DataFrame) -> str:
    """The configuration every row shares, in words (empty when the rows differ)."""
    parts = []
    if all(table[c].nunique() == 1 for c in CONFIG_COLUMNS):
        row = table.iloc[0]
        parts.append(f"All models: {row.backbone}, {row.frames} frames of {row['size']}x{row['size']} px.")
    if table["measured_on"].nunique() == 1 and table["measured_on"].iloc[0]:
        parts.append(f"Accuracy measured on the {table['measured_on'].iloc[0]}.")
    return " ".join(parts)

st.title("Models")
st.caption("The chosen models side by side: what each costs, how it mixes time, how it trained, "
           "what it gets right, and what it says about the chosen clip.")

loaded = shared.chosen_and_loaded()
summaries = shared.summaries(loaded)
table = zoo.scheme_table(summaries, shared.complexity_tables(summaries), shared.measured_costs(loaded))

st.header("Cost and accuracy", divider="gray")
st.dataframe(table, hide_index=True, column_config=TABLE_COLUMNS, column_order=shown_columns(table))
st.caption(shared_values(table) + " Cost: one forward pass at batch 1 on one CPU thread (median of 5 "
           "interleaved runs), relative to TSN with the same backbone, frames and input size. Temporal "
           "classes come in mirror pairs that differ only in frame order; *reversed → mirror*: how often "
           "the reversed clip is called the mirror class (high means the model reads frame order).")
left, right = st.columns(2)
left.plotly_chart(figures.cost_figure(table))
right.plotly_chart(figures.accuracy_cost_figure(table))

st.header("How each scheme mixes time", divider="gray")
specs = {s.spec.scheme: s.spec for s in summaries if s.spec.scheme in SCHEMES}
drawn = st.multiselect("Schemes to draw", list(SCHEMES), default=list(specs), key="models_schemes",
                       format_func=lambda name: f"{SCHEMES[name].title} ({name})",
                       help="Every scheme of the scheme table; the chosen models' schemes are preselected "
                            "(drawn with their own options).")
costs = {
    row.scheme: f"FLOPs ×{row.flops_vs_tsn:.2f} · params ×{row.params_vs_tsn:.2f}"
    for row in table.drop_duplicates("scheme").itertuples()
    if pd.notna(row.flops_vs_tsn)
}
routings = [scheme_routing(scheme, options=specs[scheme].options if scheme in specs else None)
            for scheme in drawn]
if routings:
    st.plotly_chart(figures.scheme_diagram(routings, costs))
st.caption("Each grid is one block: for each slice of the output channels at frame *t* (rows), which "
           "input frames it is made from (columns) and how. 2D schemes: the temporal operator run before "
           "the block's 2D convs; 3D schemes: the block's convolution. Stacking blocks widens the reach.")
with st.expander("The schemes in words"):
    st.dataframe(
        pd.DataFrame([
            {"scheme": s.name, "title": s.title, "kind": s.kind, "what mixes time": s.mixes_time,
             "cost": s.cost, "paper": s.paper}
            for s in (SCHEMES[name] for name in drawn)
        ]),
        hide_index=True,
    )

st.header("Training", divider="gray")
history = zoo.history_frame({s.label: s.history for s in summaries})
if history.empty:
    st.info("These checkpoints carry no training history.")
else:
    st.plotly_chart(figures.history_figure(history))
    missing = [s.label for s in summaries if not s.history]
    if missing:
        st.caption(f"No training history in: {', '.join(missing)}.")

st.header("Per-class accuracy", divider="gray")
per_class = zoo.per_class_frame({s.label: s.metrics for s in summaries if s.metrics})
if per_class.empty:
    st.info("No per-class results: " + "; ".join(f"{s.label}: {s.metrics_note}" for s in summaries))
else:
    st.plotly_chart(figures.per_class_figure(per_class, summaries[0].spec.class_kinds))
    st.caption("Measured on: " + "; ".join(sorted({s.metrics_source for s in summaries if s.metrics})) + ".")
for summary in summaries:
    if not summary.metrics:
        st.warning(f"**{summary.label}**: {summary.metrics_note}")

st.subheader("Confusion matrices")
confusions, notes = shared.confusions(loaded, summaries)
if confusions:
    st.plotly_chart(figures.confusion_figure(confusions))
    st.caption("Rows: true class; columns: predicted; each row sums to 100%. " + " ".join(notes))

st.header("Predictions on the chosen clip", divider="gray")
clip = shared.chosen_clip()
if clip is None:
    st.info("Choose a clip in the sidebar.", icon=":material/arrow_back:")
    st.stop()
predictions = shared.predictions(loaded, clip)
if predictions:
    first_label, first = next(iter(predictions.items()))
    st.plotly_chart(figures.frames_figure(first.frames, first.indices))
    st.caption(f"The {len(first.indices)} frames {first_label} samples from **{clip.label}** "
               "(centre of each segment), before resizing and normalisation.")
    mirror = first.mirror_of.get(clip.true_class) if clip.true_class else None
    st.dataframe(zoo.prediction_frame(predictions, clip.true_class, mirror), hide_index=True, column_config={
        "probability": st.column_config.ProgressColumn("probability", **PERCENT),
        "reversed_probability": st.column_config.ProgressColumn("probability (reversed)", **PERCENT),
        "reversed_predicted": st.column_config.TextColumn("predicted with frames reversed"),
        "reversed_is_mirror": st.column_config.CheckboxColumn(f"reversed → {mirror}"),
    })
    st.plotly_chart(figures.probability_figure(
        zoo.probability_frame(predictions), zoo.probability_frame(predictions, reverse=True),
        clip.true_class, mirror,
    ))
    if clip.true_class:
        st.caption(f"Red box: the true class, {clip.true_class}."
                   + (f" Dotted orange box: its temporal mirror, {mirror}, which a model that reads frame "
                      "order should predict for the reversed clip." if mirror else ""))
