"""Reports: built from real runs of the demo models, opened in real chromium, escaped, reproducible."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import (
    RENDERED_JS,
    bundle_files,
    read_bundle_tables,
    render_html,
    static_figures,
    write_zip,
)
from analysis.report_sections import build_report, figure_names, load_section
from workbench.cli import main
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.models import build_model, save_model

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
EVIL_CLASS = "<script>window.__xss=1</script>"
EVIL_FILE = '<img src=x onerror="window.__xss=2">.mp4'
EVIL_NOTE = "</script><script>window.__xss=3</script> & <b>bold?</b>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One real run of each analysis on shipped demo models and probe clips (CLI, in-process)."""
    base = tmp_path_factory.mktemp("runs")
    models = demo_checkpoints()
    probe = demo_probe_dir()
    video = str(probe / "move_left" / "move_left_00000.mp4")
    assert main(["temporal-test", "--model", str(models["tsn"]), "--model", str(models["gsm"]),
                 "--data", str(probe), "--out", str(base / "temporal"), "--perturbations", "original",
                 "shuffle", "reverse", "--permutations", "1", "--bootstrap", "200", "--quiet"]) == 0
    assert main(["gates", str(models["gsm"]), video, "--out", str(base / "gates")]) == 0
    assert main(["attribute", "--model", str(models["tsn"]), "--model", str(models["gsm"]), video,
                 "--methods", "saliency", "--out", str(base / "attribution")]) == 0
    return {"temporal": base / "temporal", "gates": base / "gates", "attribution": base / "attribution"}


def _open_in_chromium(html_path: Path, screenshot: Path | None = None) -> dict:
    """Load a file offline (every non-file request aborted); what rendered, what failed, what ran.

    In a worker thread: the browser tests' session-wide Playwright keeps an asyncio loop in this one.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_load_offline, html_path, screenshot).result()


def _load_offline(html_path: Path, screenshot: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    network: list[str] = []
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: errors.append(str(err)))

            def route(request_route) -> None:
                if request_route.request.url.startswith("file:"):
                    request_route.continue_()
                else:
                    network.append(request_route.request.url)
                    request_route.abort()

            page.route("**/*", route)
            page.goto(html_path.resolve().as_uri())
            page.wait_for_function(RENDERED_JS, timeout=90_000)
            state = page.evaluate("""() => ({
                figures: document.querySelectorAll('.figure').length,
                drawn: Array.from(document.querySelectorAll('.figure')).filter(
                    d => d.querySelector('.main-svg') && d._fullData && d._fullData.length > 0).length,
                plots: document.querySelectorAll('.figure.js-plotly-plot').length,
                xss: window.__xss === undefined ? null : window.__xss,
                text: document.body.innerText,
                scripts: Array.from(document.scripts).map(s => s.textContent.slice(0, 40)),
            })""")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return {**state, "errors": errors, "network": network}


def test_report_of_all_three_analyses_renders_offline_in_chromium(runs, tmp_path):
    report = build_report([runs["temporal"], runs["gates"], runs["attribution"]], title="demo report")
    kinds = [s.kind for s in report.sections]
    assert kinds == ["temporal-test", "gates", "attribute"]
    names = figure_names(report)
    # the page's figures: accuracy bars, sensitivity heatmaps, reverse confusion, gate maps, attribution grid
    for expected in ("temporal-test-1/accuracy", "temporal-test-1/sensitivity_shuffle",
                     "temporal-test-1/reverse_gsm", "gates-1/gate_overlay", "gates-1/routing_heatmap",
                     "attribute-1/saliency_grid", "attribute-1/saliency_profile"):
        assert expected in names
    assert set(report.models["model"]) == {"tsn", "gsm"}
    gsm = report.models.set_index("model").loc["gsm"]
    assert gsm["scheme"] == "gsm" and gsm["params"] > 0 and gsm["gflops"] > 0 and 0 < gsm["accuracy"] <= 1
    assert "gates-1" in gsm["used_in"] and "temporal-test-1" in gsm["used_in"]
    path = tmp_path / "report.html"
    path.write_text(render_html(report))
    html = path.read_text()
    assert html.count("<script>") == 2  # plotly.js once (inlined) + the drawing loop; no per-figure copies
    seen = _open_in_chromium(path, SCREENSHOTS / "report.png")
    assert seen["errors"] == [] and seen["network"] == []
    assert seen["figures"] == len(names) == seen["drawn"] == seen["plots"]
    for heading in ("Models", "Temporal reasoning", "Gates & shifts", "Attribution", "Provenance"):
        assert heading in seen["text"]


def test_user_strings_show_as_text_and_never_run(tmp_path):
    """A class name and a file name that are HTML/script appear literally; nothing executes."""
    probe = demo_probe_dir()
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(probe / "move_left" / "move_left_00000.mp4", data / EVIL_FILE)
    shutil.copy(probe / "move_right" / "move_right_00000.mp4", data / "plain.mp4")
    with (data / "list.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerow([EVIL_FILE, EVIL_CLASS])
        writer.writerow(["plain.mp4", "plain"])
    model = build_model("tsn", backbone="resnet-tiny", num_classes=2, frames=4, input_size=32, resize=32,
                        class_names=[EVIL_CLASS, "plain"])
    checkpoint = tmp_path / "evil <b>model</b>.pt"
    save_model(model, checkpoint)
    out = tmp_path / "run"
    assert main(["temporal-test", "--model", str(checkpoint), "--data", str(data / "list.csv"), "--out",
                 str(out), "--perturbations", "original", "reverse", "--bootstrap", "50", "--quiet"]) == 0
    report = build_report([out], title="<i>title</i>", notes=EVIL_NOTE)
    html = render_html(report)
    for raw in (EVIL_CLASS, EVIL_FILE, EVIL_NOTE, "<b>model</b>", "<i>title</i>"):
        assert raw not in html  # only escaped forms are in the file
    path = tmp_path / "report.html"
    path.write_text(html)
    seen = _open_in_chromium(path)
    assert seen["xss"] is None, f"a user string executed: window.__xss = {seen['xss']}"
    assert seen["errors"] == []
    for raw in (EVIL_CLASS, EVIL_FILE, "<i>title</i>", "</script><script>window.__xss=3</script>"):
        assert raw in seen["text"], raw  # shown as text
    assert len(seen["scripts"]) == 2 + seen["figures"]  # plotly.js, the loop, one JSON block per figure


def test_zip_tables_reload_into_the_same_dataframes(runs, tmp_path):
    report = build_report([runs["temporal"], runs["attribution"]])
    bundle = write_zip(bundle_files(report), tmp_path / "bundle.zip")
    tables = read_bundle_tables(bundle)
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert "report.html" in names and "provenance/report.json" in names
        assert any(n.startswith("maps/attribute-1/") and n.endswith(".npz") for n in names)
        for section in report.sections:
            for table in section.tables:
                stem = f"tables/{section.key}/{table.name}"
                pd.testing.assert_frame_equal(tables[stem], table.frame)
                from_csv = pd.read_csv(io.BytesIO(archive.read(stem + ".csv")))
                expected = pd.read_csv(io.StringIO(table.frame.to_csv(index=False)))
                pd.testing.assert_frame_equal(from_csv, expected)
    pd.testing.assert_frame_equal(tables["tables/models"], report.models)
    results = tables["tables/temporal-test-1/results"]
    assert len(results) == len(pd.read_parquet(runs["temporal"] / "results.parquet"))


def test_two_reports_of_the_same_runs_differ_only_in_their_date(runs, tmp_path):
    dirs = [runs["temporal"], runs["gates"], runs["attribution"]]
    first, second = build_report(dirs), build_report(dirs)
    second.created = "2000-01-01T00:00:00+00:00"
    a, b = render_html(first).splitlines(), render_html(second).splitlines()
    assert len(a) == len(b)
    differing = [(x, y) for x, y in zip(a, b) if x != y]
    assert differing and all(first.created in x and second.created in y for x, y in differing)
    # bundles too, with static figures: only the files that print the date differ
    section_only = build_report([runs["attribution"]]), build_report([runs["attribution"]])
    files = [bundle_files(r, static_figures(r, ("png", "svg"))) for r in section_only]
    assert files[0].keys() == files[1].keys()
    assert any(k.endswith(".png") for k in files[0]) and any(k.endswith(".svg") for k in files[0])
    changed = sorted(k for k in files[0] if files[0][k] != files[1][k])
    assert changed == ["provenance/report.json", "report.html"] or (
        section_only[0].created == section_only[1].created and changed == [])


def test_report_cli_writes_html_and_zip_and_rejects_bad_input(runs, tmp_path):
    out = tmp_path / "r.html"
    command = [sys.executable, "-m", "workbench", "report", str(runs["gates"]), "--out", str(out), "--zip",
               "--formats", "png", "--pdf"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and out.with_suffix(".zip").is_file()
    pdf = out.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000  # printed after every figure was drawn
    with zipfile.ZipFile(out.with_suffix(".zip")) as archive:
        assert any(n.startswith("figures/gates-1/") and n.endswith(".png") for n in archive.namelist())
    for bad, message in ((tmp_path / "missing", "not a directory"), (tmp_path, "no run.json")):
        failed = subprocess.run([sys.executable, "-m", "workbench", "report", str(bad), "--out", str(out)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert failed.returncode == 2
        assert failed.stderr.strip().count("\n") == 0
        assert message in failed.stderr and str(bad) in failed.stderr


def test_load_section_recognises_each_kind(runs):
    kinds = {"temporal": "temporal-test", "gates": "gates", "attribution": "attribute"}  # run.json's `kind`
    for name, path in runs.items():
        section = load_section(path)
        assert section.kind == kinds[name] and section.figures and section.tables and section.provenance


def test_reports_page_builds_a_report_from_a_run_directory(runs):
    """AppTest: the Reports page in the real app builds from a typed run directory, shows the preview
    and the downloads; a path that is no run directory gives an error box, not a traceback."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/reports.py").run()
    assert not at.exception
    at.text_area(key="reports_extra").set_value(str(runs["attribution"])).run()
    at.button(key="reports_build").click().run()
    assert not at.exception and not at.error
    assert [b.label for b in at.get("download_button")][:1] == ["report.html"]
    assert at.get("iframe") or at.get("html") or "Preview" in [h.value for h in at.header]
    at.text_area(key="reports_extra").set_value(str(ROOT / "no-such-run")).run()
    at.button(key="reports_build").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "no-such-run" in at.error[0].value
