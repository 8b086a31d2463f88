"""Gates & Shifts page: inside GSM/GSF — gate maps, gate statistics, learned vs TSM routing, gate-motion
alignment and gate interventions, for one gated model on the chosen clip.

Thin view: widgets -> analysis.gates / analysis.shifts -> analysis.gates_figures.
"""

from __future__ import annotations

import streamlit as st

from analysis import gates, gates_figures
from app_pages import shared
from app_pages.heavy import estimate_note, stop_button
from workbench.app_state import ModelSource, demo_model_sources, file_stamp
from workbench.demo import demo_probe_dir

PERCENT = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
ACCURACY = "gates_accuracy"  # session_state: (request key, DataFrame) of the last dataset intervention run


def _gated_sources() -> list[ModelSource]:
    """GSM/GSF models: those chosen in the sidebar first, then the demo ones not chosen."""
    chosen = [s for s in shared.chosen_models() if shared.is_gated(s)]
    paths = {s.path for s in chosen}
    return chosen + [s for s in demo_model_sources() if shared.is_gated(s) and s.path not in paths]


st.title("Gates & Shifts")
st.caption("GSM decides, per position and frame, how much of each feature group moves to the "
           "neighbouring frame: group 0 sends features back in time (frame t receives t+1), group 1 "
           "forward (t receives t-1). Gates near 0 keep features in place, near +1 move them, near -1 "
           "move them with a minus sign and keep twice as much: a frame difference.")

sources = _gated_sources()
if not sources:
    st.info("No GSM or GSF model: add a gsm/gsf checkpoint in the sidebar (the demo ones appear here "
            "once trained).", icon=":material/arrow_back:")
    st.stop()
by_label = {s.label: s for s in sources}
label = st.selectbox("Gated model", list(by_label), key="gates_model",
                     help="GSM/GSF models chosen in the sidebar and the shipped demo gsm/gsf.")
source = by_label[label]
clip = shared.chosen_clip()
if clip is None:
    st.info("Choose a clip in the sidebar.", icon=":material/arrow_back:")
    st.stop()
try:
    model = shared.load_source(source)
    with st.spinner(f"capturing gates of {source.label} on {clip.label}"):
        report = shared.gates_on_clip(source, clip)
except (*shared.MODEL_ERRORS, *shared.VIDEO_ERRORS) as err:
    st.error(shared.error_message(err), icon=":material/error:")
    st.stop()

names = model.spec.class_names
predicted = names[int(report.run.logits[0].argmax())]
truth = f" (true class **{clip.true_class}**)" if clip.true_class else ""
st.markdown(f"**{source.label}** predicts **{predicted}** on **{clip.label}**{truth}.")

layers = [layer.name for layer in report.run.layers]
layer = report.run.layer(st.selectbox("Layer", layers, key="gates_layer",
                                      help="The layer of the gate maps, channel x time and alignment maps."))
figures = gates_figures.report_figures(report, layer.name)

st.header("Gate maps over the frames", divider="gray")
frame = st.slider("Frame", 0, report.frames.shape[0] - 1, 0, key="gates_frame")
maps = gates.gate_maps(layer, report.frames.shape[1])
st.plotly_chart(gates_figures.gate_overlay_figure(report.frames, maps, layer.name, time=frame))
st.caption("Gate maps upsampled from the layer's feature resolution and laid over the model's input "
           "frames (blue: positive gate, red: negative).")

st.header("Gate statistics per layer", divider="gray")
st.plotly_chart(figures["gate_time"])
left, right = st.columns(2)
left.plotly_chart(figures["gate_layers"])
right.plotly_chart(figures["gate_histogram"])

st.header("Routing: learned (GSM) vs hard-wired (TSM)", divider="gray")
st.caption("Share of feature energy each frame keeps or receives from t-1 and t+1, computed from the "
           "operator's input and gates (moved = gate·x, kept = (1-gate)·x). TSM's fixed shift (1/8 of "
           "the channels back, 1/8 forward) is applied to the same features for comparison.")
st.plotly_chart(figures["routing_heatmap"])
st.plotly_chart(figures["routing_bars"])
st.plotly_chart(figures["channel_time"])

st.header("Do gates follow motion?", divider="gray")
st.plotly_chart(figures["alignment"])
columns = {"motion_correlation": st.column_config.NumberColumn("corr(|gate|, motion)", format="%.3f"),
           "gate_in_mask_share": st.column_config.ProgressColumn("|gate| mass in object", **PERCENT),
           "mask_area": st.column_config.ProgressColumn("object area", **PERCENT),
           "concentration": st.column_config.NumberColumn("mass / area", format="%.2f"),
           "mask_correlation": st.column_config.NumberColumn("corr(|gate|, mask)", format="%.3f")}
st.dataframe(report.alignment.drop(columns=["layer_index"]), hide_index=True, column_config=columns)
st.caption("Mass / area above 1: gates are stronger on the moving object than elsewhere. The object "
           "mask exists for probe clips only; it is area-averaged to each layer's feature resolution.")
st.plotly_chart(figures["alignment_maps"])

st.header("Interventions: force the gates", divider="gray")
st.caption("; ".join(f"**{mode}**: {text}" for mode, text in gates.INTERVENTION_MEANING.items()))
st.dataframe(report.interventions, hide_index=True, column_config={
    "probability": st.column_config.ProgressColumn("probability", **PERCENT),
    "original_class_probability": st.column_config.ProgressColumn("p(original prediction)", **PERCENT),
    "probability_change": st.column_config.NumberColumn("change", format="%+.3f"),
    "total_variation": st.column_config.NumberColumn("TV distance", format="%.3f")})
st.plotly_chart(figures["interventions"])

probe = demo_probe_dir()
if (probe / "labels.csv").is_file() and shared.probe_classes(probe) == list(names):
    key = (source.path, file_stamp(source.path))
    stop_button("gates_stop", "the intervention accuracy")
    if st.button("Measure accuracy under each intervention on the shipped probe clips",
                 key="gates_accuracy_run"):
        clips = len(list(probe.rglob("*.mp4")))
        passes = 1 + len(gates.INTERVENTIONS) * (1 + len(gates.gated_ops(model)))
        estimate_note([(model, clips * passes, 0)], "every intervention on the probe clips")
        bar = st.progress(0.0, text="running every intervention on the probe clips")

        def report(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"pass {done} of {total} over the probe clips")

        st.session_state[ACCURACY] = (key, gates.intervention_accuracy(model, probe, progress=report))
        bar.empty()
    stored = st.session_state.get(ACCURACY)
    if stored and stored[0] == key:
        accuracy = stored[1]
        st.dataframe(accuracy, hide_index=True, column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", **PERCENT),
            "accuracy_change": st.column_config.NumberColumn("change", format="%+.3f")})
        st.plotly_chart(gates_figures.intervention_figure(accuracy, "accuracy_change"))
