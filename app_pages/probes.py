"""Probes page: how far along time each layer sees, whether it knows which way time runs, how much of it
encodes appearance or motion, and which schemes recognise actions with no appearance at all.

Thin view: widgets -> analysis.receptive_field / arrow_of_time / static_dynamic / appearance_free ->
analysis.probes_figures.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from analysis import probes_figures
from analysis.appearance_free import appearance_free_summary
from analysis.arrow_of_time import arrow_of_time
from analysis.figures import frames_figure
from analysis.receptive_field import input_clips, reach_summary, receptive_field
from analysis.static_dynamic import static_dynamic
from app_pages import shared
from workbench.app_state import file_stamp
from workbench.demo import TEST_SEED, demo_manifest, demo_probe_dir, pair_set
from workbench.errors import UserError
from workbench.models import file_sha256
from workbench.models.reach import layer_bounds
from workbench.probe import clip_rng, render_appearance_free_clip

# session_state: (request key, {table name: DataFrame}, checkpoints) of each analysis; the Reports page
# reads them
RESULTS = {"receptive-field": "probes_receptive-field", "arrow-of-time": "probes_arrow-of-time",
           "static-dynamic": "probes_static-dynamic"}
PERCENT = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
ERRORS = (UserError, FileNotFoundError, ValueError)
PAIR_SEED, PAIRS_PER_CLASS = 7, 2  # the default pair set, made once in the cache
Tables = dict[str, pd.DataFrame]
Progress = Callable[[int, int], None]

st.title("Probes")
st.caption("Four questions with known answers: how far along time each layer sees (TSN: not at all), "
           "whether a layer can tell a clip from its reverse (an order-blind layer: exactly 50%), how much "
           "of a layer encodes appearance or motion (Kowal et al., CVPR 2022; TSN's dynamic score: 0), and "
           "whether a model recognises an action when every single frame is noise (after Ilic et al., "
           "ECCV 2022; TSN: chance).")

loaded = shared.chosen_and_loaded()
models = {source.label: model for source, model in loaded}
files = tuple((source.label, source.path, file_stamp(source.path)) for source, _ in loaded)


def run_button(kind: str, key: tuple, label: str, compute: Callable[[Progress], Tables]) -> Tables | None:
    """The stored result of `kind`, computed when the button is pressed (with a progress bar); None
    before the first run. A result for other models or settings is shown with a warning."""
    if st.button(label, key=f"probes_run_{kind}"):
        bar = st.progress(0.0, text="starting")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"{done} / {total}")

        try:
            checkpoints = [{"label": label, "path": path, "sha256": file_sha256(path)}
                           for label, path, _ in files]
            st.session_state[RESULTS[kind]] = (key, compute(progress), checkpoints)
        except ERRORS as err:
            st.error(shared.error_message(err), icon=":material/error:")
        bar.empty()
    stored = st.session_state.get(RESULTS[kind])
    if stored is None:
        return None
    if stored[0] != key:
        st.warning("Models or settings changed since this result; run it again to update.")
    return stored[1]


# --- temporal receptive field --------------------------------------------------------------------------
st.header("Temporal receptive field", divider="gray")
st.caption("For each layer, the gradient influence of each input frame on an output frame's features, by "
           "their offset (normalised per layer), next to the analytic bound of the scheme table (red "
           "ticks): a shift adds one frame each way per block, GSM two (its gate comes from a 3-tap kernel "
           "at the frame it moves), GSF three, a temporal kernel of size k adds (k-1)/2. Beyond the bound "
           "the influence is exactly zero.")
longest = max(max(layer_bounds(model).values()) for model in models.values())
left, mid, right = st.columns(3)
frames = int(left.number_input(
    "Frames per clip", 2, 64, max(8, min(2 * longest + 1, 25)), key="probes_rf_frames",
    help="Longer than the model's own clip shows the whole reach (2 x bound + 1)."))
count = int(mid.number_input("Clips", 1, 8, 1, key="probes_rf_clips", help="Shipped probe clips averaged."))
projections = int(right.number_input(
    "Random projections", 1, 8, 2, key="probes_rf_probes",
    help="Per output frame; the influence estimate's noise falls with more."))


def receptive(progress: Progress) -> Tables:
    clips = {label: input_clips(model, demo_probe_dir(), count, frames) for label, model in models.items()}
    table = receptive_field(models, clips, probes=projections)
    return {"receptive_field": table, "summary": reach_summary(table)}


found = run_button("receptive-field", (files, frames, count, projections), "Measure the receptive field",
                   receptive)
if found is not None:
    st.plotly_chart(probes_figures.receptive_field_figure(found["receptive_field"]))
    st.plotly_chart(probes_figures.reach_figure(found["summary"]))
    st.dataframe(found["summary"], hide_index=True)

# --- arrow of time ----------------------------------------------------------------------------------------
st.header("Arrow of time", divider="gray")
st.caption("A logistic regression on each layer's pooled features tells a clip from its reverse, cross-"
           "validated with folds split by video (a clip and its reverse are never split); whiskers: 95% "
           "bootstrap intervals over videos. On the probe, each mirror pair's first class runs forward and "
           "the static classes (random walks, the same both ways) are left out.")
videos = st.text_input("Videos", value=str(demo_probe_dir()), key="probes_arrow_data").strip()


def arrow(progress: Progress) -> Tables:
    result = arrow_of_time(models, videos, bootstrap=1000, progress=progress)
    return {"summary": result.summary, "results": result.results}


found = run_button("arrow-of-time", (files, videos), "Probe the arrow of time", arrow)
if found is not None:
    st.plotly_chart(probes_figures.arrow_figure(found["summary"]))
    st.dataframe(found["summary"], hide_index=True, column_config={
        "accuracy": st.column_config.ProgressColumn("accuracy", **PERCENT),
        "ci_low": st.column_config.NumberColumn("95% low", format="percent"),
        "ci_high": st.column_config.NumberColumn("95% high", format="percent")})

# --- static and dynamic bias ---------------------------------------------------------------------------
st.header("Static and dynamic bias", divider="gray")
st.caption("Kowal et al.'s estimate on probe pairs: correlation of a layer's pooled features over pairs "
           "sharing the look (a clip and its reverse: static) or the motion (two looks of one track, minus "
           "the correlation with the second played backwards: dynamic), over the features' total variance; "
           "per unit, the same correlation classifies it (threshold 0.5).")
pairs = st.text_input("Pair set (folder with pairs.csv; empty: a generated one)", value="",
                      key="probes_pairs_data",
                      help="`python -m workbench probe-data OUT --pairs` makes one.").strip()


def bias(progress: Progress) -> Tables:
    folder = pairs or pair_set(PAIR_SEED, PAIRS_PER_CLASS)
    result = static_dynamic(models, folder, progress=progress)
    return {"summary": result.summary, "units": result.units}


found = run_button("static-dynamic", (files, pairs), "Estimate static and dynamic bias", bias)
if found is not None:
    st.plotly_chart(probes_figures.static_dynamic_figure(found["summary"]))
    st.plotly_chart(probes_figures.unit_share_figure(found["summary"]))
    st.dataframe(found["summary"], hide_index=True, column_config={
        f"{kind}_{what}": st.column_config.NumberColumn(f"{kind} {what}", format="percent")
        for kind in ("static", "dynamic", "joint") for what in ("share", "units")})

# --- appearance-free probe ---------------------------------------------------------------------------------
st.header("Without appearance", divider="gray")
st.caption("The probe's classes rendered as noise: the object is a noise texture moved by its class's "
           "motion over standing background noise, so every single frame is independent noise and only "
           "motion shows the object. The demo schemes trained on it with the demo recipe "
           f"(`demo --train --appearance-free`), measured on a fresh seed ({TEST_SEED}); whiskers: exact "
           "95% intervals.")
example = render_appearance_free_clip("move_right", clip_rng(TEST_SEED, "move_right", 0), 8, 48)[0]
st.plotly_chart(frames_figure(example))
st.caption("An appearance-free *move right* clip: each frame alone is noise.")
summary = appearance_free_summary(demo_manifest(appearance_free=True)["models"])
if summary.empty:
    st.info("No appearance-free demo models shipped; `python -m workbench demo --train --appearance-free` "
            "trains them.")
else:
    st.plotly_chart(probes_figures.appearance_free_figure(summary))
    st.dataframe(summary, hide_index=True, column_config={
        name: st.column_config.ProgressColumn(name.replace("_", " "), **PERCENT)
        for name in ("accuracy", "temporal_accuracy", "static_accuracy")})
