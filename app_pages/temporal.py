"""Temporal Reasoning page: shuffle, reverse, freeze... the frames and see which models notice.

Thin view: widgets -> analysis.temporal (runs, statistics) -> analysis.temporal_figures.
"""

from __future__ import annotations

import io
from pathlib import Path

import streamlit as st

from analysis import temporal, temporal_figures
from analysis.perturb import PERTURBATIONS, order_only_names
from app_pages import shared
from app_pages.heavy import estimate_note, stop_button
from workbench.app_state import file_stamp
from workbench.demo import demo_probe_dir
from workbench.errors import UserError, VideoError

RESULT = "temporal_result"  # session_state: (request key, ExperimentResult) of the last dataset run
CLIP_RESULT = "temporal_clip_result"  # session_state: (request key, ClipOrders) of the last clip run
DATASET, CLIP = "A dataset", "The chosen clip"
PERCENT = {"format": "percent", "min_value": 0.0, "max_value": 1.0}

st.title("Temporal reasoning")
st.caption("Does a model use frame order? Play its clips shuffled, reversed, frozen or partly reordered "
           "and see how its answers change. An order-blind model (TSN) gives the same answer for every "
           "reordering; a model that reads time loses accuracy, and on a reversed clip of a "
           "mirror-pair class (move left / move right) it should answer the mirror class.")

loaded = shared.chosen_and_loaded()
models = {source.label: model for source, model in loaded}
checkpoints = {source.label: source.path for source, _ in loaded}

target = st.radio("Test on", [DATASET, CLIP], horizontal=True, key="temporal_target")
left, right = st.columns([3, 2])
perturbations = left.multiselect(
    "Perturbations", list(PERTURBATIONS), default=list(PERTURBATIONS), key="temporal_perturbations",
    format_func=lambda name: name.replace("_", " "),
    help="; ".join(f"**{name}**: {row.description}" for name, row in PERTURBATIONS.items()),
)
permutations = right.number_input("Random draws per perturbation", 1, 20, 3, key="temporal_permutations",
                                  help="Shuffle, freeze, block shuffle and each sweep level are drawn "
                                       "this many times per video.")
seed = right.number_input("Seed", 0, 2**31 - 1, 0, key="temporal_seed")
config = temporal.ExperimentConfig(perturbations=tuple(perturbations), permutations=int(permutations),
                                   seed=int(seed), bootstrap=1000)


def _request_key(data: str) -> tuple:
    """What a result depends on: models (and their files), data and settings."""
    files = tuple((label, path, file_stamp(path)) for label, path in checkpoints.items())
    return files, data, repr(config.key())


def _downloads(result: temporal.ExperimentResult) -> None:
    """Results and summary as CSV / Parquet."""
    buffer = io.BytesIO()
    result.results.to_parquet(buffer, index=False)
    columns = st.columns(4)
    columns[0].download_button("results.csv", result.results.to_csv(index=False), "results.csv", "text/csv")
    columns[1].download_button("results.parquet", buffer.getvalue(), "results.parquet",
                               "application/octet-stream")
    columns[2].download_button("summary.csv", result.summary.to_csv(index=False), "summary.csv", "text/csv")
    columns[3].download_button("comparisons.csv", result.comparisons.to_csv(index=False),
                               "comparisons.csv", "text/csv")


def _show_dataset_result(result: temporal.ExperimentResult) -> None:
    """Accuracy bars, the sweep, per-class sensitivity, reverse -> mirror, comparisons."""
    summary = result.summary
    st.header("Accuracy under each perturbation", divider="gray")
    st.plotly_chart(temporal_figures.accuracy_figure(summary))
    st.caption(f"{result.run.get('experiment', {}).get('dataset', {}).get('videos', '?')} videos. Bars: "
               "accuracy; whiskers: 95% bootstrap interval over videos. Freeze also removes all motion "
               "(not only order), so even an order-blind model can change under it.")
    table = summary[summary["perturbation"] != "sweep"][
        ["model", "perturbation", "accuracy", "ci_low", "ci_high", "change", "flip_rate", "mean_kl",
         "temporal_change", "static_change", "mirror_rate"]]
    st.dataframe(table, hide_index=True, column_config={
        "accuracy": st.column_config.ProgressColumn("accuracy", **PERCENT),
        "ci_low": st.column_config.NumberColumn("95% low", format="percent"),
        "ci_high": st.column_config.NumberColumn("95% high", format="percent"),
        "change": st.column_config.NumberColumn("change", format="percent"),
        "flip_rate": st.column_config.NumberColumn("top-1 flips", format="percent"),
        "mean_kl": st.column_config.NumberColumn("mean KL to original", format="%.3f"),
        "temporal_change": st.column_config.NumberColumn("change, temporal classes", format="percent"),
        "static_change": st.column_config.NumberColumn("change, static classes", format="percent"),
        "mirror_rate": st.column_config.NumberColumn("predicts mirror class", format="percent"),
    })
    if (summary["perturbation"] == "sweep").any():
        st.header("How much reordering it takes", divider="gray")
        st.plotly_chart(temporal_figures.sweep_figure(summary))
        st.caption("Each point: frame orders drawn uniformly among those with that Kendall-tau distance "
                   "from the original (0: original, 1: reversed). A flat line means the model ignores order.")
    sensitivity = result.class_sensitivity
    choices = [p for p in dict.fromkeys(sensitivity["perturbation"]) if p != "original"]
    if choices:
        st.header("Which classes depend on order", divider="gray")
        default = choices.index("shuffle") if "shuffle" in choices else 0
        chosen = st.selectbox("Perturbation", choices, index=default, key="temporal_heatmap_perturbation")
        st.plotly_chart(temporal_figures.sensitivity_figure(sensitivity, chosen))
        st.caption("Change in accuracy of each class against the original order (sweep: all levels pooled).")
    if (result.results["perturbation"] == "reverse").any():
        st.header("Played backwards: does it call the mirror class?", divider="gray")
        model_labels = list(dict.fromkeys(result.results["model"]))
        model = st.selectbox("Model", model_labels, key="temporal_confusion_model")
        st.plotly_chart(temporal_figures.reverse_confusion_figure(
            temporal.reverse_confusion(result.results, model), model))
        rates = summary[summary["perturbation"] == "reverse"][["model", "mirror_rate"]]
        if rates["mirror_rate"].notna().any():
            st.caption("Share of reversed mirror-pair clips called the mirror class: " + ", ".join(
                f"{row.model} {row.mirror_rate:.0%}" for row in rates.itertuples()) + ".")
    if not result.comparisons.empty:
        st.header("Model against model", divider="gray")
        st.dataframe(result.comparisons, hide_index=True, column_config={
            "difference": st.column_config.NumberColumn("sensitivity difference (a - b)", format="%.3f"),
            "p_value": st.column_config.NumberColumn("p (paired sign-flip)", format="%.4f"),
            "mcnemar_p": st.column_config.NumberColumn("p (McNemar)", format="%.4f"),
        })
        st.caption("Sensitivity of a video: correct on the original order (0/1) minus accuracy under the "
                   "perturbation. Differences are paired on the same videos: 95% bootstrap interval and a "
                   "sign-flip permutation p-value. McNemar compares top-1 flips (first draw) on the same "
                   "videos.")
    st.header("Download", divider="gray")
    _downloads(result)


def _show_clip_result(result: temporal.ClipOrders) -> None:
    """The sampled frames in each order, with every model's prediction for that order."""
    predictions = result.predictions
    st.header("The clip in each order", divider="gray")
    first_draws = [o for o in result.orders if o.repeat == 0]
    for order in first_draws:
        name = order.perturbation.replace("_", " ")
        level = f" (distance {order.level:.2f})" if order.level is not None else ""
        said = predictions[(predictions["perturbation"] == order.perturbation)
                           & (predictions["order"] == order.text)].drop_duplicates("model")
        answers = " · ".join(f"**{row.model}**: {row.prediction} ({row.probability:.0%})"
                             for row in said.itertuples())
        st.markdown(f"**{name}**{level} — order `{order.text}`  \n{answers}")
        st.image(temporal_figures.order_strip(result.frames, order.order), clamp=True)
    st.dataframe(predictions, hide_index=True, column_config={
        "probability": st.column_config.ProgressColumn("probability", **PERCENT),
        "p_true": st.column_config.ProgressColumn("p(true class)", **PERCENT),
    })


if not perturbations:
    st.info("Choose at least one perturbation.")
    st.stop()

if target == DATASET:
    data = st.text_input("Dataset (folder with labels.csv or class folders, or a .csv / .txt list)",
                         value=str(demo_probe_dir()), key="temporal_data",
                         help="Preselected: the probe clips shipped with the app.").strip()
    stop_button("temporal_stop", "the temporal test")
    if st.button("Run the test", type="primary", key="temporal_run"):
        videos = len(list(Path(data).rglob("*.mp4"))) if Path(data).is_dir() else 0
        estimate_note([(model, videos * len(temporal.video_orders("x", model.spec.frames, config)), 0)
                       for model in models.values()],
                      f"{len(models)} model(s) on {videos} video(s)")
        bar = st.progress(0.0, text="starting")

        def report(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"{done} / {total} videos")

        try:
            result = temporal.run_experiment(models, data, config, checkpoints=checkpoints, progress=report,
                                             command="app: Temporal reasoning page",
                                             memory=shared.memory_budget())
            st.session_state[RESULT] = (_request_key(data), result)
        except (UserError, FileNotFoundError, ValueError) as err:
            st.error(shared.error_message(err), icon=":material/error:")
        bar.empty()
    stored = st.session_state.get(RESULT)
    if stored is None:
        st.info("Press **Run the test** to run every chosen model on every perturbation of the dataset.")
    else:
        key, result = stored
        if key != _request_key(data):
            st.warning("Models, data or settings changed since this result; run the test again to update.")
        _show_dataset_result(result)
else:
    clip = shared.chosen_clip()
    if clip is None:
        st.info("Choose a clip in the sidebar.", icon=":material/arrow_back:")
        st.stop()
    st.caption(f"Clip: **{clip.label}**" + (f" (class {clip.true_class})" if clip.true_class else ""))
    key = (_request_key(clip.path), clip.path, clip.true_class)
    stored = st.session_state.get(CLIP_RESULT)
    if stored is None or stored[0] != key:
        try:
            with st.spinner(f"running {len(models)} model(s) on every order of {Path(clip.path).name}"):
                result = temporal.clip_orders(models, clip.path, config, clip.true_class)
            st.session_state[CLIP_RESULT] = (key, result)
        except (VideoError, ValueError) as err:
            st.error(shared.error_message(err), icon=":material/error:")
            st.stop()
    _show_clip_result(st.session_state[CLIP_RESULT][1])
    kept = order_only_names()
    st.caption(f"Order-only perturbations ({', '.join(kept)}) keep every frame; the others "
               f"({', '.join(p for p in PERTURBATIONS if p not in kept)}) do not.")
