"""The probing commands end to end: run directories with the tables the issue names, report sections,
and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.report_sections import build_report
from workbench import probe
from workbench.cli import main
from workbench.demo import demo_checkpoints, demo_probe_dir

from .test_cli import run_cli


@pytest.fixture(scope="module")
def checkpoints() -> list[str]:
    shipped = demo_checkpoints()
    return ["--model", str(shipped["tsn"]), "--model", str(shipped["tsm"])]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, checkpoints: list[str]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probe-runs")
    pairs = root / "pairs"
    assert main(["probe-data", str(pairs), "--pairs", "--clips-per-class", "1", "--frames", "8"]) == 0
    out = {kind: root / kind for kind in ("receptive-field", "arrow-of-time", "static-dynamic")}
    assert main(["receptive-field", *checkpoints, "--out", str(out["receptive-field"]), "--clips", "1",
                 "--frames", "9", "--quiet"]) == 0
    assert main(["arrow-of-time", *checkpoints, "--data", str(demo_probe_dir()), "--out",
                 str(out["arrow-of-time"]), "--bootstrap", "100", "--quiet"]) == 0
    assert main(["static-dynamic", *checkpoints, "--data", str(pairs), "--out", str(out["static-dynamic"]),
                 "--quiet"]) == 0
    return out


def test_run_directories_hold_the_named_tables(runs: dict[str, Path]) -> None:
    field = pd.read_csv(runs["receptive-field"] / "receptive_field.csv")
    assert list(field.columns) == ["model", "layer", "offset", "influence", "bound"]
    assert sorted(field["offset"].unique()) == list(range(-8, 9))
    assert (field[(field["model"] == "tsn") & (field["offset"] != 0)]["influence"] == 0.0).all()
    arrow = pd.read_csv(runs["arrow-of-time"] / "summary.csv")
    assert list(arrow.columns) == ["model", "layer", "accuracy", "ci_low", "ci_high"]
    assert (arrow[arrow["model"] == "tsn"]["accuracy"] == 0.5).all()
    bias = pd.read_csv(runs["static-dynamic"] / "summary.csv")
    assert list(bias.columns[:4]) == ["model", "layer", "static", "dynamic"]
    assert (bias[bias["model"] == "tsn"]["dynamic"] == 0.0).all()
    for kind, folder in runs.items():
        run = json.loads((folder / "run.json").read_text())
        assert run["kind"] == kind and run["status"] == "complete"
        assert [m["label"] for m in run["models"]] == ["tsn", "tsm"]
        assert all((folder / "figures" / f"{name}.html").is_file() for name in run["outputs"]["figures"])


def test_report_has_a_section_per_probe(runs: dict[str, Path], tmp_path: Path) -> None:
    report = build_report(list(runs.values()))
    assert [s.kind for s in report.sections] == list(runs)
    assert [len(s.figures) for s in report.sections] == [2, 1, 2]
    assert main(["report", *map(str, runs.values()), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    for title in ("Temporal receptive field", "Arrow of time", "Static and dynamic bias"):
        assert title in html


def test_bad_input_is_one_line(checkpoints: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = [
        (["arrow-of-time", *checkpoints, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")],
         "nowhere"),
        (["static-dynamic", *checkpoints, "--data", str(demo_probe_dir()), "--out", str(tmp_path / "b")],
         "pairs.csv"),
        (["receptive-field", *checkpoints, "--out", str(tmp_path / "c"), "--clips", "0"], "--clips"),
    ]
    for args, named in cases:
        assert main(args) == 2
        stderr = capsys.readouterr().err
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and named in errors[0], stderr[-500:]
    result = run_cli(*cases[0][0])  # a real process: one line, no traceback
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_probe_data_writes_the_variants(tmp_path: Path) -> None:
    assert main(["probe-data", str(tmp_path / "free"), "--appearance-free", "--clips-per-class", "1",
                 "--frames", "8"]) == 0
    assert json.loads((tmp_path / "free" / "classes.json").read_text())["appearance_free"] is True
    assert (tmp_path / "free" / "labels.csv").read_text().count("\n") == 1 + len(probe.class_names())
