"""Report sections from analysis results: run directories on disk or results held by the app.

Each analysis writes a run directory (`run.json` + tables); `load_section` reads its kind from
run.json (`workbench.rundir.read_run`) and rebuilds the figures the app shows from the tables, or
reads the figure JSON the command saved (`figures/*.json`) when a figure needs data that is not in a
table (attribution overlays, gate maps). `model_table` describes every checkpoint the sections used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.io as pio

from workbench import rundir
from workbench.errors import RunDirError

from .report import Report, ReportError, ReportFigure, ReportTable, Section

# run kind (run.json's `kind`) -> section title; a kind without a section is refused by name
KIND_TITLES = {"temporal-test": "Temporal reasoning", "gates": "Gates & shifts", "attribute": "Attribution",
               "receptive-field": "Temporal receptive field", "arrow-of-time": "Arrow of time",
               "static-dynamic": "Static and dynamic bias"}


def _read_run(run_dir: Path) -> dict[str, Any]:
    try:
        return rundir.read_run(run_dir)
    except RunDirError as err:
        raise ReportError(str(err)) from None


def _csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: unreadable table ({err})") from None


def _saved_figures(run_dir: Path) -> list[ReportFigure]:
    """Figures a command saved as plotly JSON (figures/<name>.json), in name order."""
    figures = []
    for path in sorted((run_dir / "figures").glob("*.json")):
        try:
            fig = pio.from_json(path.read_text(), skip_invalid=True)
        except ValueError as err:
            raise ReportError(f"{path}: not a plotly figure ({err})") from None
        title = path.stem.replace("_", " ")
        figures.append(ReportFigure(path.stem, title[:1].upper() + title[1:], fig))
    return figures


def _arrays(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "maps").glob("*.npz"))}


# ---------------------------------------------------------------------------------------------
# Temporal tests


def temporal_section(result: Any, key: str, source: str) -> Section:
    """A temporal-test result (analysis.temporal.ExperimentResult) as a section: the page's figures."""
    from . import temporal, temporal_figures

    summary, sensitivity, results = result.summary, result.class_sensitivity, result.results
    run = result.run or {}
    figures = []
    if not summary.empty:
        figures.append(ReportFigure(
            "accuracy", "Accuracy under each perturbation", temporal_figures.accuracy_figure(summary),
            "Bars: accuracy; whiskers: 95% bootstrap interval over videos."))
        if (summary["perturbation"] == "sweep").any():
            figures.append(ReportFigure(
                "sweep", "How much reordering it takes", temporal_figures.sweep_figure(summary),
                "Frame orders at a controlled Kendall-tau distance from the original (0) to reversed (1)."))
    for perturbation in dict.fromkeys(sensitivity.get("perturbation", pd.Series(dtype=str))):
        if perturbation != "original":
            figures.append(ReportFigure(
                f"sensitivity_{perturbation}", f"Which classes depend on order: {perturbation}",
                temporal_figures.sensitivity_figure(sensitivity, perturbation),
                "Change in each class's accuracy against the original order."))
    if not results.empty and (results["perturbation"] == "reverse").any():
        for model in dict.fromkeys(results["model"]):
            figures.append(ReportFigure(
                f"reverse_{model}", f"Played backwards: {model}",
                temporal_figures.reverse_confusion_figure(temporal.reverse_confusion(results, model), model)))
    tables = [
        ReportTable("summary", "Summary per model and perturbation", summary),
        ReportTable("most_order_sensitive_videos", "Videos whose prediction changes most often",
                    most_sensitive_videos(results),
                    "Share of perturbed versions (all perturbations but the original) whose top-1 "
                    "prediction differs from the original order's; the 20 highest per report."),
        ReportTable("class_sensitivity", "Per-class sensitivity", sensitivity),
        ReportTable("comparisons", "Model against model (paired tests)", result.comparisons),
        ReportTable("results", "Every observation", results, shown=False),
    ]
    dataset = run.get("dataset") or {}
    text = [f"{dataset.get('videos', '?')} videos from {dataset.get('path', '?')}; "
            f"perturbations: {', '.join(run.get('options', {}).get('perturbations', []))}."]
    return Section(key, KIND_TITLES["temporal-test"], "temporal-test", source, figures,
                   [t for t in tables if not t.frame.empty], provenance=run, checkpoints=_checkpoints(run),
                   text=text)


def most_sensitive_videos(results: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """Per video and model: flip rate and mean KL over perturbed versions, most flipped first."""
    perturbed = results[results["perturbation"] != "original"] if not results.empty else results
    if perturbed.empty:
        return pd.DataFrame()
    table = (perturbed.groupby(["video", "class_name", "model"], sort=True)
             .agg(flip_rate=("flip", "mean"), mean_kl=("kl", "mean"), versions=("flip", "size"))
             .reset_index())
    return table.sort_values(["flip_rate", "mean_kl", "video", "model"], ascending=[False, False, True, True],
                             kind="stable").head(top).reset_index(drop=True)


def _checkpoints(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The models of a run as the model table lists them."""
    return [{"label": m.get("label"), "path": m.get("path"), "sha256": m.get("sha256")}
            for m in run.get("models", [])]


def _temporal_from_dir(run_dir: Path, key: str) -> Section:
    from .temporal import load_result

    try:
        result = load_result(run_dir)
    except (OSError, ValueError) as err:
        raise ReportError(f"{run_dir}: incomplete temporal run ({err})") from None
    return temporal_section(result, key, str(run_dir))


# ---------------------------------------------------------------------------------------------
# Gates & shifts


_GATE_TABLE_TITLES = {
    "gate_stats": "Gate statistics per layer, group and frame", "gate_histogram": "Gate value histogram",
    "routing": "Routing per layer", "alignment": "Gate alignment with motion and the object",
    "interventions": "Gate interventions on this clip",
    "intervention_accuracy": "Gate interventions on the data",
}


def _gate_figures_from_tables(tables: dict[str, pd.DataFrame]) -> list[ReportFigure]:
    """The gate figures that tables alone can draw (runs saved before figures were kept as JSON)."""
    from . import gates_figures as gf

    builders = [("gate_time", "gate_stats", gf.gate_time_figure),
                ("gate_layers", "gate_stats", gf.gate_layer_figure),
                ("gate_histogram", "gate_histogram", gf.gate_histogram_figure),
                ("alignment", "alignment", gf.alignment_figure),
                ("interventions", "interventions", gf.intervention_figure)]
    return [ReportFigure(name, name.replace("_", " ").capitalize(), build(tables[table]))
            for name, table, build in builders if table in tables and not tables[table].empty]


def gates_section(report: Any, key: str, source: str, checkpoint: dict[str, Any], layer: str | None = None,
                  provenance: dict[str, Any] | None = None) -> Section:
    """An in-app gate report (analysis.gates.GateReport) as a section: the Gates page's figures."""
    from .gates_figures import report_figures

    figures = [ReportFigure(name, name.replace("_", " ").capitalize(), fig)
               for name, fig in report_figures(report, layer).items()]
    routing = pd.concat(report.routing.values(), ignore_index=True)
    frames = {"gate_stats": report.statistics, "gate_histogram": report.histogram, "routing": routing,
              "alignment": report.alignment, "interventions": report.interventions}
    tables = [ReportTable(name, _GATE_TABLE_TITLES[name], frame) for name, frame in frames.items()]
    return Section(key, KIND_TITLES["gates"], "gates", source, figures, tables,
                   provenance=provenance or {}, checkpoints=[checkpoint])


def _gates_from_dir(run_dir: Path, run: dict[str, Any], key: str) -> Section:
    tables = {name: _csv(run_dir / f"{name}.csv") for name in run.get("outputs", {}).get("tables", [])
              if (run_dir / f"{name}.csv").is_file()}
    figures = _saved_figures(run_dir) or _gate_figures_from_tables(tables)
    report_tables = [ReportTable(name, _GATE_TABLE_TITLES.get(name, name), frame)
                     for name, frame in tables.items()]
    if (run_dir / "summary.csv").is_file():
        report_tables.insert(0, ReportTable("summary", "Summary per layer", _csv(run_dir / "summary.csv")))
    video = (run.get("video") or {}).get("path", "?")
    layer = run.get("options", {}).get("layer") or "first gated"
    return Section(key, KIND_TITLES["gates"], "gates", str(run_dir), figures, report_tables,
                   provenance=run, text=[f"Video {video}, layer {layer}."], checkpoints=_checkpoints(run))


# ---------------------------------------------------------------------------------------------
# Attribution


def _attribution_from_dir(run_dir: Path, run: dict[str, Any], key: str) -> Section:
    from . import attribution_figures

    summary = _csv(run_dir / "summary.csv") if (run_dir / "summary.csv").is_file() else pd.DataFrame()
    figures = _saved_figures(run_dir)
    if run.get("dataset") and not summary.empty and "energy_in_mask" in summary:
        figures.insert(0, ReportFigure(
            "localisation", "Localisation: energy inside the object mask",
            attribution_figures.localisation_figure(summary),
            "Share of attribution energy inside the ground-truth mask (bars, 95% interval) against the "
            "mask's share of the frame (line): a map that beats the line points at the object."))
    tables = [ReportTable("summary", "Metrics per model and method", summary)]
    if (run_dir / "agreement.csv").is_file():
        tables.append(ReportTable("agreement", "Agreement (rank correlation) of maps",
                                  _csv(run_dir / "agreement.csv")))
    if (run_dir / "results.parquet").is_file():
        tables.append(ReportTable("results", "Every clip", pd.read_parquet(run_dir / "results.parquet"),
                                  shown=False))
    where = (run.get("dataset") or {}).get("path") or (run.get("video") or {}).get("path", "?")
    methods = run.get("options", {}).get("methods", [])
    return Section(key, KIND_TITLES["attribute"], "attribute", str(run_dir), figures,
                   [t for t in tables if not t.frame.empty], arrays=_arrays(run_dir), provenance=run,
                   checkpoints=_checkpoints(run), text=[f"Methods {', '.join(methods)} on {where}."])


# ---------------------------------------------------------------------------------------------
# Probes: receptive field, arrow of time, static/dynamic bias


def _probe_figures(kind: str, tables: dict[str, pd.DataFrame]) -> list[ReportFigure]:
    """The Probes page's figures of one probing run, rebuilt from its tables."""
    from . import probes_figures as pf

    if kind == "receptive-field":
        return [ReportFigure("receptive_field", "Influence of each input frame, by offset",
                             pf.receptive_field_figure(tables["receptive_field"]),
                             "Share of the gradient influence on an output frame's features that comes from "
                             "the input frame at each offset; red ticks: the analytic bound."),
                ReportFigure("reach", "Reach against the analytic bound", pf.reach_figure(tables["summary"]),
                             "Farthest offset with non-zero influence (bars) and the bound (markers).")]
    if kind == "arrow-of-time":
        return [ReportFigure("arrow_of_time", "Forward or reversed? A linear probe per layer",
                             pf.arrow_figure(tables["summary"]),
                             "Held-out accuracy of a logistic regression on pooled features, folds split by "
                             "video; whiskers: 95% bootstrap interval over videos; 50%: order invisible.")]
    return [ReportFigure("static_dynamic", "Static and dynamic scores per layer",
                         pf.static_dynamic_figure(tables["summary"]),
                         "Kowal et al.'s estimate: correlation over pairs sharing the look (static) or the "
                         "motion, minus its reversed control (dynamic), over the features' total variance."),
            ReportFigure("unit_shares", "What each layer's units encode",
                         pf.unit_share_figure(tables["summary"]),
                         "Units whose correlation over a factor's pairs exceeds the threshold.")]


PROBE_TABLES = {"receptive-field": ("summary", "receptive_field"), "arrow-of-time": ("summary", "results"),
                "static-dynamic": ("summary", "units")}
_PROBE_TABLE_TITLES = {"summary": "Summary per model and layer", "receptive_field": "Influence per offset",
                       "results": "Every video, forward and reversed", "units": "Every unit"}


def probe_section(kind: str, tables: dict[str, pd.DataFrame], key: str, source: str,
                  provenance: dict[str, Any] | None = None, checkpoints: list[dict[str, Any]] | None = None,
                  text: str = "") -> Section:
    """A probing result (its tables, `PROBE_TABLES[kind]`) as a section: the Probes page's figures."""
    report_tables = [ReportTable(name, _PROBE_TABLE_TITLES[name], tables[name], shown=name == "summary")
                     for name in PROBE_TABLES[kind]]
    return Section(key, KIND_TITLES[kind], kind, source, _probe_figures(kind, tables), report_tables,
                   provenance=provenance or {}, checkpoints=checkpoints or [], text=[text] if text else [])


def _probe_from_dir(run_dir: Path, run: dict[str, Any], key: str) -> Section:
    kind = run["kind"]
    tables = {}
    for name in PROBE_TABLES[kind]:
        if not (run_dir / f"{name}.csv").is_file():
            raise ReportError(f"{run_dir}: incomplete {kind} run (no {name}.csv)")
        tables[name] = _csv(run_dir / f"{name}.csv")
    where = (run.get("dataset") or {}).get("path") or run.get("options", {}).get("data", "?")
    return probe_section(kind, tables, key, str(run_dir), run, _checkpoints(run), f"Inputs from {where}.")


# ---------------------------------------------------------------------------------------------
# Sections, models, the report


def load_section(run_dir: str | Path, key: str | None = None) -> Section:
    """The section of one run directory (temporal test, gates, attribution or a probe)."""
    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    kind = run["kind"]
    key = key or kind
    if kind == "temporal-test":
        return _temporal_from_dir(run_dir, key)
    if kind == "gates":
        return _gates_from_dir(run_dir, run, key)
    if kind == "attribute":
        return _attribution_from_dir(run_dir, run, key)
    if kind in PROBE_TABLES:
        return _probe_from_dir(run_dir, run, key)
    raise ReportError(f"{run_dir}: a {kind} run has no report section")


def _unique_keys(sections: Sequence[Section]) -> None:
    """Keys temporal-1, gates-1, ... in order of appearance (stable for the same inputs)."""
    counts: dict[str, int] = {}
    for section in sections:
        counts[section.kind] = counts.get(section.kind, 0) + 1
        section.key = f"{section.kind}-{counts[section.kind]}"
        if counts[section.kind] > 1 or sum(s.kind == section.kind for s in sections) > 1:
            section.title = f"{KIND_TITLES[section.kind]} ({counts[section.kind]})"


def model_table(sections: Sequence[Section]) -> pd.DataFrame:
    """One row per checkpoint used: scheme, backbone, params, FLOPs, accuracy, sha256."""
    from workbench.demo import demo_manifest
    from workbench.models import file_sha256, load_model
    from workbench.models.complexity import count_flops_of_shape

    shipped = {m["sha256"]: m for m in demo_manifest().get("models", [])}
    rows: dict[str, dict[str, Any]] = {}
    for section in sections:
        for entry in section.checkpoints:
            sha, path = entry.get("sha256"), entry.get("path")
            row = rows.setdefault(sha or str(path), {
                "model": entry.get("label"), "scheme": None, "backbone": None, "frames": None,
                "input_size": None, "params": None, "gflops": None, "accuracy": None,
                "accuracy_source": "", "sha256": sha, "checkpoint": path, "used_in": []})
            row["used_in"].append(section.key)
            if row["scheme"] is not None or not path or not Path(path).is_file():
                continue
            if sha and file_sha256(path) != sha:
                row["accuracy_source"] = "checkpoint file changed since the run"
                continue
            try:
                model = load_model(path)
            except Exception as err:  # e.g. a release file that needs options the run had: report anyway
                row["accuracy_source"] = f"not loaded here: {str(err).splitlines()[0] if str(err) else err!r}"
                continue
            spec = model.spec
            # counted on the meta device: a full-size release costs no forward pass here
            flops = count_flops_of_shape(model, (1, spec.frames, 3, spec.input_size, spec.input_size))
            row.update(scheme=spec.scheme, backbone=spec.backbone, frames=spec.frames,
                       input_size=spec.input_size, params=sum(p.numel() for p in model.parameters()),
                       gflops=round(flops / 1e9, 6))
            if sha in shipped:
                row.update(accuracy=shipped[sha]["metrics"]["accuracy"],
                           accuracy_source=f"demo manifest ({shipped[sha]['test_data']})")
            elif (getattr(model, "extra", None) or {}).get("best_val_acc") is not None:
                row.update(accuracy=model.extra["best_val_acc"],
                           accuracy_source="validation split at training")
    table = pd.DataFrame(list(rows.values()))
    if not table.empty:
        table["used_in"] = table["used_in"].map(", ".join)
    return table


def report_provenance(sections: Sequence[Section]) -> dict[str, Any]:
    """The report's run.json record: versions, the models, and each section's command, seeds and
    dataset. The date is kept apart (`Report.created`), so rebuilds differ only where it is printed."""
    models = {(m.get("sha256"), m.get("path")): m for s in sections for m in s.checkpoints}
    record = rundir.new_run(
        "report", "python -m workbench report", models=list(models.values()),
        options={"sections": [{"key": s.key, "kind": s.kind, "source": s.source,
                               "command": s.provenance.get("command"), "seeds": s.provenance.get("seeds"),
                               "dataset": s.provenance.get("dataset")} for s in sections]})
    for dated in ("started", "status"):
        record.pop(dated)
    return record


def build_report(
    run_dirs: Sequence[str | Path] = (), sections: Sequence[Section] = (),
    title: str = "Gate-Shift Workbench report", notes: str = "",
) -> Report:
    """A report from run directories and/or sections built from in-app results."""
    all_sections = [*sections, *(load_section(d) for d in run_dirs)]
    if not all_sections:
        raise ReportError("nothing to report: give at least one run directory or result")
    _unique_keys(all_sections)
    return Report(title=title, sections=all_sections, models=model_table(all_sections),
                  provenance=report_provenance(all_sections), notes=notes)


def figure_names(report: Report) -> list[str]:
    """section/figure names in report order (what the HTML draws)."""
    return [f"{s.key}/{f.name}" for s in report.sections for f in s.figures]
