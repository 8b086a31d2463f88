"""Reports page: pick results of this session and saved run directories, preview the report, download
it (self-contained HTML, zip bundle with figures and tables, single figures).

Thin view: widgets -> analysis.report_sections / analysis.report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from analysis import report, report_sections
from app_pages import shared
from workbench.access import PathNotAllowed
from workbench.app_state import typed_path
from workbench.models import file_sha256

TEMPORAL_RESULT = "temporal_result"  # written by the Temporal reasoning page: (request key, ExperimentResult)
# written by the Probes page: (request key, {table name: DataFrame}, checkpoints) per probing analysis
PROBE_RESULTS = {"receptive-field": "probes_receptive-field", "arrow-of-time": "probes_arrow-of-time",
                 "static-dynamic": "probes_static-dynamic"}
BUILT = "reports_built"  # session_state: (request key, Report, html)
BUNDLE = "reports_bundle"  # session_state: (request key, zip bytes)


def run_directories(folder: Path, depth: int = 3) -> list[Path]:
    """Run directories (holding a run.json) under `folder`, sorted; the folder itself counts."""
    if not folder.is_dir():
        return []
    found = [folder] if (folder / "run.json").is_file() else []
    for level in range(1, depth + 1):
        found += sorted(p.parent for p in folder.glob("/".join(["*"] * level) + "/run.json"))
    return found


st.title("Reports")
st.caption("Everything the app shows, out of the app: one HTML file that opens offline (interactive "
           "figures, tables, model table, provenance), a zip with PNG/SVG figures and CSV/Parquet tables, "
           "or single figures.")

st.header("What to include", divider="gray")
sections: list[report.Section] = []
labels: list[str] = []
temporal_result = st.session_state.get(TEMPORAL_RESULT)
if temporal_result is not None:
    result = temporal_result[1]
    models = ", ".join(dict.fromkeys(result.results["model"])) if not result.results.empty else "-"
    if st.checkbox(f"This session's temporal test ({models}; {result.results['video'].nunique()} videos)",
                   value=True, key="reports_temporal"):
        sections.append(report_sections.temporal_section(result, "temporal-test", "this app session"))
        labels.append(f"temporal:{result.run.get('started', '')}")
else:
    st.caption("No temporal test run in this session yet (page *Temporal reasoning*).")

for kind, state_key in PROBE_RESULTS.items():
    stored = st.session_state.get(state_key)
    if stored is None:
        continue
    _, tables, checkpoints = stored
    models = ", ".join(dict.fromkeys(tables["summary"]["model"]))
    title = report_sections.KIND_TITLES[kind]
    if st.checkbox(f"This session's {title.lower()} ({models})", value=True, key=f"reports_{kind}"):
        sections.append(report_sections.probe_section(kind, tables, kind, "this app session",
                                                      {"app": "Probes", "kind": kind}, checkpoints))
        labels.append(f"{kind}:{stored[0]}")

clip = shared.chosen_clip()
gated = [s for s in shared.chosen_models() if shared.is_gated(s)]
if gated and clip is not None:
    source = gated[0]
    if st.checkbox(f"Gates & shifts of {source.label} on {clip.label}", value=False, key="reports_gates"):
        try:
            with st.spinner(f"capturing gates of {source.label}"):
                gate_report = shared.gates_on_clip(source, clip)
        except (*shared.MODEL_ERRORS, *shared.VIDEO_ERRORS) as err:
            st.error(shared.error_message(err), icon=":material/error:")
        else:
            checkpoint = {"label": source.label, "path": source.path, "sha256": file_sha256(source.path)}
            sections.append(report_sections.gates_section(
                gate_report, "gates", "this app session", checkpoint,
                provenance={"app": "Gates & Shifts", "model": source.label, "clip": clip.label,
                            "checkpoint": checkpoint}))
            labels.append(f"gates:{source.path}:{clip.path}")

folder = st.text_input("Folder with saved runs", value="runs", key="reports_folder",
                       help="Output folders of `python -m workbench temporal-test / gates / attribute` "
                            "(each holds a run.json); searched three levels deep.")
try:
    found = run_directories(typed_path(folder)) if folder.strip() else []
except PathNotAllowed as err:
    st.error(shared.error_message(err), icon=":material/error:")
    found = []
chosen_dirs = st.multiselect("Saved runs", [str(p) for p in found], key="reports_dirs",
                             placeholder="none found" if not found else "choose run directories")
extra = st.text_area("More run directories (one path per line)", key="reports_extra", height=80)
run_dirs = [*chosen_dirs, *(line.strip() for line in extra.splitlines() if line.strip())]
title = st.text_input("Title", value="Gate-Shift Workbench report", key="reports_title")
notes = st.text_area("Notes (shown under the title)", key="reports_notes", height=80)

request = json.dumps([labels, run_dirs, title, notes])
if st.button("Build report", type="primary", disabled=not (sections or run_dirs), key="reports_build"):
    try:
        with st.spinner("building the report (model table: parameters and FLOPs of each checkpoint)"):
            built = report_sections.build_report(run_dirs, sections=sections, title=title, notes=notes)
            st.session_state[BUILT] = (request, built, report.render_html(built))
            st.session_state.pop(BUNDLE, None)
    except (report.ReportError, *shared.MODEL_ERRORS) as err:
        st.error(shared.error_message(err), icon=":material/error:")

if BUILT not in st.session_state:
    st.stop()
built_request, built, html = st.session_state[BUILT]
if built_request != request:
    st.warning("The choices changed since this report was built: build it again to include them.",
               icon=":material/refresh:")

st.header("Download", divider="gray")
stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
st.caption(f"{len(built.sections)} sections, {len(report_sections.figure_names(built))} figures, "
           f"{len(built.models)} models; HTML {len(html.encode()) / 1e6:.1f} MB (plotly.js inlined once).")
columns = st.columns(3)
columns[0].download_button("report.html", html, f"report-{stamp}.html", "text/html", key="reports_html")
if columns[1].button("Prepare zip bundle (PNG + SVG figures)", key="reports_zip"):
    bar = st.progress(0.0, text="drawing static figures")
    try:
        static = report.static_figures(built, progress=lambda done, total: bar.progress(
            done / total, text=f"figure {done}/{total}"))
    except Exception as err:  # kaleido/chromium missing or failing: the HTML is still there
        st.error(f"static figures failed: {shared.error_message(err)}", icon=":material/error:")
    else:
        st.session_state[BUNDLE] = (built_request, report.zip_bytes(report.bundle_files(built, static)))
    bar.empty()
bundle = st.session_state.get(BUNDLE)
if bundle is not None and bundle[0] == built_request:
    columns[1].download_button("report.zip", bundle[1], f"report-{stamp}.zip", "application/zip",
                               key="reports_zip_download")
names = report_sections.figure_names(built)
if names:
    chosen = columns[2].selectbox("Single figure", names, key="reports_figure")
    key, name = chosen.split("/", 1)
    figure = next(f.figure for s in built.sections if s.key == key for f in s.figures if f.name == name)
    columns[2].download_button(f"{name}.html", figure.to_html(include_plotlyjs=True, full_html=True),
                               f"{name}.html", "text/html", key="reports_figure_html")

st.header("Preview", divider="gray")
components.html(html, height=900, scrolling=True)
