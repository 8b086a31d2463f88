"""The Probes page through AppTest with the shipped demo zoo: each analysis runs from its button and draws
its figures with the known answers, bad paths are messages, and the Reports page offers the results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import app_pages

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "app_pages/probes.py"


@pytest.fixture(autouse=True)
def probes_page_registered(one_torch_thread: None) -> None:
    """The page is registered in app_pages.PAGES (and runs with one torch thread)."""
    assert "probes.py" in [file for file, _, _ in app_pages.PAGES]


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"]["meta"]["figure"]: spec for spec in specs}


@pytest.fixture
def page() -> AppTest:
    """The page with two demo models chosen (tsn and tsm): small enough to run every analysis."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page(PAGE).run()
    at.sidebar.multiselect(key="model_labels").set_value(["tsn", "tsm"]).run()
    assert not at.exception
    return at


def test_each_analysis_runs_from_its_button(page: AppTest) -> None:
    before = charts(page)
    assert "frames" in before and "receptive_field" not in before
    page.number_input(key="probes_rf_frames").set_value(9).run()
    for kind in ("receptive-field", "arrow-of-time", "static-dynamic"):
        page.button(key=f"probes_run_{kind}").click().run()
        assert not page.exception and not page.error, [e.value for e in page.error]
    drawn = charts(page)
    assert {"receptive_field", "reach", "arrow_of_time", "static_dynamic", "unit_shares"} <= set(drawn)
    arrow = page.session_state["probes_arrow-of-time"][1]["summary"]
    assert (arrow[arrow["model"] == "tsn"]["accuracy"] == 0.5).all()
    bias = page.session_state["probes_static-dynamic"][1]["summary"]
    assert (bias[bias["model"] == "tsn"]["dynamic"] == 0.0).all()
    field = page.session_state["probes_receptive-field"][1]["receptive_field"]
    assert (field[(field["model"] == "tsn") & (field["offset"] != 0)]["influence"] == 0.0).all()

    page.switch_page("app_pages/reports.py").run()
    boxes = [box.label for box in page.checkbox]
    for title in ("temporal receptive field", "arrow of time", "static and dynamic bias"):
        assert any(label.startswith(f"This session's {title}") for label in boxes), boxes


def test_bad_paths_are_messages(page: AppTest, tmp_path: Path) -> None:
    page.text_input(key="probes_arrow_data").input(str(tmp_path / "nowhere")).run()
    page.button(key="probes_run_arrow-of-time").click().run()
    assert not page.exception and len(page.error) == 1 and "nowhere" in page.error[0].value
    page.text_input(key="probes_pairs_data").input(str(tmp_path)).run()
    page.button(key="probes_run_static-dynamic").click().run()
    assert not page.exception and len(page.error) == 1 and "pairs.csv" in page.error[0].value
