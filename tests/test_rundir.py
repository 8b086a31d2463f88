"""One run directory format: run.json written and read by workbench.rundir, earlier formats upgraded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.report_sections import build_report, load_section
from workbench import rundir
from workbench.errors import AnalysisError, RunDirError

FORMAT0 = Path(__file__).parent / "fixtures" / "rundirs" / "format0"
KINDS = {"temporal-test": "temporal-test", "gates": "gates", "attribute": "attribute"}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_format_0_run_directories_read_as_the_current_format(name: str) -> None:
    run = rundir.read_run(FORMAT0 / name)
    assert run["format"] == rundir.FORMAT and run["version"] == rundir.FORMAT_VERSION
    assert run["kind"] == KINDS[name] and run["upgraded_from"] == 0
    assert run["models"] and all(m["sha256"] and m["path"] for m in run["models"])
    assert run["command"].startswith("python -m workbench ")
    assert run["versions"]["torch"]


def test_format_0_runs_keep_what_they_recorded() -> None:
    temporal = rundir.read_run(FORMAT0 / "temporal-test")
    original = json.loads((FORMAT0 / "temporal-test" / "run.json").read_text())
    assert temporal["identity"] == original["experiment"]  # so an old partial run can still resume
    assert [m["label"] for m in temporal["models"]] == ["tsn", "gsm"]
    assert temporal["dataset"]["videos"] == 28
    assert temporal["options"]["perturbations"] == ["original", "reverse"]
    gates = rundir.read_run(FORMAT0 / "gates")
    assert gates["models"][0]["label"] == "gsm" and "gate_stats" in gates["outputs"]["tables"]
    attribution = rundir.read_run(FORMAT0 / "attribute")
    assert attribution["options"]["methods"] == ["saliency"] and attribution["video"]["sha256"]


def test_a_report_is_built_from_format_0_runs() -> None:
    sections = [load_section(FORMAT0 / name) for name in sorted(KINDS)]
    assert [s.kind for s in sections] == ["attribute", "gates", "temporal-test"]
    assert all(s.tables for s in sections)
    gates = sections[1]
    assert {f.name for f in gates.figures} >= {"gate_time", "gate_histogram", "alignment"}  # from its tables
    report = build_report([FORMAT0 / name for name in sorted(KINDS)])
    assert set(report.models["model"]) == {"tsn", "gsm"}
    assert report.provenance["kind"] == "report" and report.provenance["format"] == rundir.FORMAT


def test_the_current_format_round_trips_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    run = rundir.new_run("gates", "python -m workbench gates a b", options={"layer": None})
    rundir.write_run(tmp_path / "ok", rundir.finish(run, outputs={"tables": []}))
    back = rundir.read_run(tmp_path / "ok")
    assert back == json.loads(json.dumps(run)) and back["status"] == "complete"
    future = {**run, "version": rundir.FORMAT_VERSION + 1}
    rundir.write_run(tmp_path / "future", future)
    with pytest.raises(RunDirError, match="format version 2; this workbench reads versions 0 to 1"):
        rundir.read_run(tmp_path / "future")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "run.json").write_text(json.dumps({"format": "mlflow"}))
    with pytest.raises(RunDirError, match="format 'mlflow', not a workbench run"):
        rundir.read_run(tmp_path / "foreign")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no run.json"):
        rundir.read_run(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "run.json").write_text(json.dumps({"rows": 3}))
    with pytest.raises(RunDirError, match="no format this workbench knows"):
        rundir.read_run(tmp_path / "odd")
    with pytest.raises(ValueError, match="unknown run kind"):
        rundir.new_run("train", "x")


def test_a_resumable_run_refuses_a_directory_of_another_run(tmp_path: Path) -> None:
    first = rundir.new_run("temporal-test", "a", identity={"config": 1})
    rundir.open_run_dir(tmp_path / "run", first)
    same = rundir.new_run("temporal-test", "a", identity={"config": 1})
    again = rundir.open_run_dir(tmp_path / "run", same)
    assert again["resumed"] == 1  # the first never finished
    with pytest.raises(AnalysisError, match="holds a different experiment"):
        rundir.open_run_dir(tmp_path / "run", rundir.new_run("temporal-test", "a", identity={"config": 2}))
    with pytest.raises(AnalysisError, match="holds a different experiment"):
        rundir.open_run_dir(tmp_path / "run", rundir.new_run("attribute", "a", identity={"config": 1}))
    shutil.copytree(FORMAT0 / "temporal-test", tmp_path / "old")
    old = rundir.read_run(tmp_path / "old")
    newer = rundir.new_run("temporal-test", "b", identity=old["identity"])
    resumed = rundir.open_run_dir(tmp_path / "old", newer)
    assert resumed["started"] == old["started"]
