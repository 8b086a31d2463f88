"""Attribution page: Captum maps of the chosen clip for several models and methods, side by side —
where and when each scheme looks, how well the maps sit on the object and how faithful they are.

Thin view: widgets -> analysis.attribution -> analysis.attribution_figures.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import torch

from analysis import attribution, attribution_figures
from app_pages import shared
from app_pages.heavy import estimate_note, run_heavy, stop_button
from workbench.app_state import ModelSource, file_stamp
from workbench.demo import demo_localisation
from workbench.errors import UserError
from workbench.models.feature_layers import stage_names
from workbench.video import load_clip, using_decoder

TARGETS = {
    "predicted": "predicted class",
    "true": "true class",
    "mirror": "mirror of the predicted class (why left and not right?)",
}
DEFAULT_METHODS = ["saliency", "integrated_gradients", "gradcam"]
PERCENT = {"format": "percent", "min_value": 0.0, "max_value": 1.0}


def _map(source: ModelSource, video: str, video_stamp: str, method: str, target: int,
         options: tuple[tuple[str, Any], ...]) -> attribution.ClipExplanation:
    """One attribution and its metrics, in the server's queue of heavy work; kept per (model file, clip
    file, method, target, options, decoder)."""
    model = shared.load_source(source)
    key = ("attribution", source.path, file_stamp(source.path), video, video_stamp, method, target, options,
           shared.decoder())
    budget = shared.memory_budget()
    row = attribution.METHODS[method]
    spec = model.spec
    shape = torch.empty(1, spec.frames, 3, spec.input_size, spec.input_size, device="meta")
    # the items per pass the session's budget holds (what the job will run with): its cost in the queue
    planned = attribution.batched_options(row, row.parse(dict(options)), model, shape, budget)
    clips = getattr(planned, row.batching.option) if row.batching is not None else 1
    inputs = row.batching.inputs_per_item if row.batching is not None else 1.0
    cost = shared.job_cost(model, clips=clips, backward=row.backward, inputs_per_item=inputs)
    return run_heavy(key, f"{attribution.method_label(method)} of {source.label}", cost, 10.0,
                     lambda: attribution.explain_video(model, video, method, target, memory=budget,
                                                       **dict(options)))


@st.cache_data(show_spinner=False, max_entries=64)
def _sanity(path: str, stamp: str, video: str, video_stamp: str, method: str, target: int,
            decoder: str) -> float:
    """Rank correlation of the map before and after randomising the model's last two layers."""
    model = shared.load_source(ModelSource(path, path, "path"))
    with using_decoder(decoder):
        clip = load_clip(video, model.spec)
    steps = attribution.randomization_check(model, clip, method, target)
    return steps[-1].rank_correlation


def _stages(model: Any) -> list[str]:
    """The model's feature stages in forward order (none when it cannot be traced: Grad-CAM then says why)."""
    try:
        return stage_names(model)
    except UserError:
        return []


def _target(choice: str, model: Any, predicted: str, true_class: str | None) -> int | None:
    """The class index to explain for one model, or None when the choice has no answer for it; the
    mirror is of what the model says, so the two readings can be compared."""
    names = model.spec.class_names
    label = names.index(true_class) if true_class in names else None
    return attribution.resolve_target(choice, model.spec, names.index(predicted), label)


st.title("Attribution")
st.caption("Which pixels and which frames each model's decision rests on, by Captum attribution "
           "methods. Gradient maps (Saliency, Integrated Gradients, SmoothGrad, Input × Gradient, Guided "
           "Backprop) attribute every input value; Occlusion and temporal ablation measure what removing "
           "a patch or a frame costs; Grad-CAM weights the last stage's features.")

sources = shared.chosen_models()
clip_source = shared.chosen_clip()
if not sources or clip_source is None:
    st.info("Choose one or more models and a clip in the sidebar.", icon=":material/arrow_back:")
    st.stop()
loaded = shared.load_chosen(sources)
if not loaded:
    st.stop()
by_label = {source.label: (source, model) for source, model in loaded}

left, middle, right = st.columns([2, 2, 2])
picked = left.multiselect("Models", list(by_label), default=list(by_label)[:4], key="attr_models")
linked = [m for m in st.query_params.get("methods", "").split(",") if m in attribution.METHODS]
methods = middle.multiselect("Methods", list(attribution.METHODS), default=linked or DEFAULT_METHODS,
                             format_func=attribution.method_label, key="attr_methods")
choice = right.radio("Explain", list(TARGETS), format_func=TARGETS.get, key="attr_target",
                     help="The mirror class is the same motion reversed in time (move_left ↔ move_right): "
                          "its map shows what speaks for the opposite reading of the clip.")
with st.expander("Method settings"):
    steps = st.slider("Integrated Gradients steps", 8, 64, 32, step=8, key="attr_steps")
    samples = st.slider("SmoothGrad samples", 4, 32, 8, step=4, key="attr_samples")
    stages = {label: _stages(by_label[label][1]) for label in picked}
    layers = list(dict.fromkeys(name for names in stages.values() for name in names))
    default = stages[picked[0]][-1] if picked and stages[picked[0]] else None
    layer = st.selectbox("Grad-CAM layer", layers, index=layers.index(default) if default in layers else None,
                         key="attr_layer", help="The feature stage Grad-CAM weighs (the models' own, in "
                         "forward order; preselected: the last one). Later stages are coarser; a model "
                         "without the chosen stage uses its last one.")
    sanity = st.checkbox("Randomisation check (Adebayo et al.): recompute each map with the last two "
                         "layers randomised", key="attr_sanity")
if not picked or not methods:
    st.info("Pick at least one model and one method.")
    st.stop()

try:
    video_stamp = file_stamp(clip_source.path)
    predictions = shared.predictions([by_label[label] for label in picked], clip_source)
except shared.VIDEO_ERRORS as err:
    st.error(f"cannot read {clip_source.label}: {shared.error_message(err)}", icon=":material/error:")
    st.stop()
if choice == "true" and clip_source.true_class is None:
    st.warning("This clip has no known true class (only probe clips do): showing the predicted class.")
    choice = "predicted"

# only the options a method uses go into its cache key: moving a slider recomputes that method alone
method_options = {"integrated_gradients": (("steps", steps),), "smoothgrad": (("samples", samples),)}
jobs = []
skipped = []
for label in picked:
    source, model = by_label[label]
    if label not in predictions:
        continue
    target = _target(choice, model, predictions[label].top()[0], clip_source.true_class)
    if target is None:
        skipped.append(label)
        continue
    jobs.extend((label, source, target, method) for method in methods)
    if "gradcam" in methods and layer not in stages[label]:
        st.caption(f"{label} has no stage {layer!r}: its Grad-CAM weighs its last stage, "
                   f"{stages[label][-1] if stages[label] else 'none'}.")
if skipped:
    st.warning(f"No {TARGETS[choice]} for: {', '.join(skipped)}.")



def _options(label: str, method: str) -> tuple[tuple[str, Any], ...]:
    """The options of one job (Grad-CAM's layer where the model has the chosen stage)."""
    if method == "gradcam" and layer in stages[label]:
        return (("layer", layer),)
    return method_options.get(method, ())


results: dict[tuple[str, str], attribution.ClipExplanation] = {}
if jobs:
    estimate_note([(by_label[label][1], *attribution.explain_passes(method, by_label[label][1].spec,
                                                                    **dict(_options(label, method))))
                   for label, _, _, method in jobs], f"{len(jobs)} map(s) with their metrics")
    stop_button("attr_stop", "the attribution maps")
bar = st.progress(0.0, text="attributing")
for i, (label, source, target, method) in enumerate(jobs):
    slow = " (slow method)" if attribution.METHODS[method].expensive else ""
    name = attribution.method_label(method)
    bar.progress(i / len(jobs), text=f"{name} for {label} ({i + 1}/{len(jobs)}){slow}")
    results[(label, method)] = _map(source, clip_source.path, video_stamp, method, target,
                                    _options(label, method))
bar.empty()
if not results:
    st.stop()
shown = list(dict.fromkeys(label for label, _ in results))

rows = []
for (label, method), result in results.items():
    row = {"model": label, "method": attribution.method_label(method), "explains": result.target_name,
           "predicted": result.predicted_name, **result.metrics}
    if sanity:
        source = by_label[label][0]
        row["sanity_rank_corr"] = _sanity(source.path, file_stamp(source.path), clip_source.path,
                                          video_stamp, method, result.target, shared.decoder())
    rows.append(row)
table = pd.DataFrame(rows).drop(columns=["target"])

tabs = st.tabs([attribution.method_label(method) for method in methods])
for tab, method in zip(tabs, methods):
    with tab:
        labels = [label for label in shown if (label, method) in results]
        maps = {label: results[(label, method)].map for label in labels}
        frames = {label: results[(label, method)].frames for label in labels}
        st.plotly_chart(attribution_figures.overlay_grid(frames, maps), key=f"grid_{method}")
        profiles = {label: results[(label, method)].profile for label in labels}
        spreads = {label: results[(label, method)].spread for label in labels}
        st.subheader("Which frames", divider="gray")
        st.caption("Share of the attribution mass in each frame; spread = entropy over log T "
                   "(1: every frame alike, 0: one frame).")
        st.plotly_chart(attribution_figures.profile_figure(profiles, spreads), key=f"profile_{method}")
        st.subheader("Faithfulness", divider="gray")
        st.caption("Deletion: the most-attributed pixels are replaced by the mean colour first — a "
                   "faithful map makes the probability fall fast. Insertion: they are restored first.")
        curves = {label: results[(label, method)].curve for label in labels}
        st.plotly_chart(attribution_figures.curves_figure(curves), key=f"curves_{method}")
        shapes = {maps[label].shape for label in labels}
        if len(labels) > 1 and len(shapes) == 1:
            agreement = attribution.agreement_table(maps)
            figure = attribution_figures.agreement_figure(agreement, labels, "agreement between models")
            st.plotly_chart(figure, key=f"agree_{method}")

st.subheader("Metrics", divider="gray")
if "energy_in_mask" not in table:
    st.caption("No ground-truth mask for this clip (only probe clips have one): no localisation scores.")
else:
    st.caption("Energy in mask: share of the map on the object; a uniform map scores the object's area "
               "share. Pointing: the map's maximum lies on the object.")
st.dataframe(table, hide_index=True, column_config={
    "energy_in_mask": st.column_config.ProgressColumn("energy in mask", **PERCENT),
    "area_share": st.column_config.NumberColumn("area share", format="%.3f"),
    "pointing_hit": st.column_config.CheckboxColumn("pointing"),
    "temporal_spread": st.column_config.NumberColumn("temporal spread", format="%.2f"),
    "seconds": st.column_config.NumberColumn("seconds", format="%.2f"),
})
if len(methods) > 1:
    with st.expander("Agreement between methods"):
        for label in shown:
            maps = {attribution.method_label(m): results[(label, m)].map
                    for m in methods if (label, m) in results}
            table_values = attribution.agreement_table(maps)
            st.plotly_chart(attribution_figures.agreement_figure(table_values, list(maps), label),
                            key=f"methods_{label}")

st.header("Localisation over probe clips: every demo model and method", divider="gray")
shipped = demo_localisation()
if shipped is None or shipped[0].empty:
    st.caption("No attribution table for the current demo models is shipped; make one with "
               "`python -m workbench attribute --model ... --data workbench/assets/probe --methods all "
               "--out RUN`.")
else:
    localisation, localisation_run = shipped
    st.plotly_chart(attribution_figures.localisation_figure(localisation), key="localisation_dataset")
    st.caption(f"{int(localisation['clips'].max())} probe clips per model, measured with "
               f"`{localisation_run.get('command', '?')}`. Bars: share of attribution energy inside the "
               "object mask (95% bootstrap interval); dashed line: the mask's share of the frame, what a "
               "uniform map would score.")
    columns = [c for c in ("model", "method", "clips", "energy_in_mask", "energy_in_mask_low",
                           "energy_in_mask_high", "area_share", "pointing_hit", "pointing_hit_low",
                           "pointing_hit_high") if c in localisation]
    st.dataframe(localisation[columns], hide_index=True, column_config={
        "energy_in_mask": st.column_config.ProgressColumn("energy in mask", **PERCENT),
        "pointing_hit": st.column_config.ProgressColumn("pointing game", **PERCENT),
    })
