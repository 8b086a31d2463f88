"""The Temporal reasoning page through AppTest, with the real sidebar, demo models and probe clips."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app_pages import PAGES
from workbench.demo import demo_checkpoints

REPO = Path(__file__).resolve().parents[1]
PAGE = "temporal.py"
# Until app_pages.PAGES lists the page, drive it through the same shell as app.py (sidebar + nav).
HARNESS = f"""
import streamlit as st
from app_pages import sidebar
page = st.navigation([st.Page({str(REPO / "app_pages" / "models.py")!r}, default=True),
                      st.Page({str(REPO / "app_pages" / PAGE)!r})])
sidebar.render()
page.run()
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two threads wait on each other (FIELD_NOTES)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def open_page(models: list[str] | None = None) -> AppTest:
    """The app on the Temporal reasoning page, with `models` chosen in the sidebar."""
    if any(file == PAGE for file, _, _ in PAGES):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
        at.switch_page(f"app_pages/{PAGE}").run()
    else:
        at = AppTest.from_string(HARNESS, default_timeout=120).run()
        at.switch_page(str(REPO / "app_pages" / PAGE)).run()
    if models is not None:
        at.sidebar.multiselect(key="model_labels").set_value(models).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly figures as JSON, keyed by the name each builder gives its figure."""
    return {json.loads(c.proto.spec)["layout"]["meta"]["figure"]: json.loads(c.proto.spec)
            for c in at.get("plotly_chart")}


def values(data: Any) -> list:
    """A plotly JSON array: a plain list, or numpy data encoded as {'dtype', 'bdata'} (base64)."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def demo_pair() -> list[str]:
    """tsn and one temporal demo model (the page must show both kinds)."""
    present = list(demo_checkpoints())
    temporal = [s for s in ("gsm", "tsm", "gsf", "c3d") if s in present]
    if "tsn" not in present or not temporal:
        pytest.fail("the tsn and temporal demo models are missing from workbench/assets")
    return ["tsn", temporal[0]]


def test_dataset_run_shows_bars_sweep_heatmap_and_mirror_confusion() -> None:
    models = demo_pair()
    at = open_page(models)
    assert at.title[0].value == "Temporal reasoning"
    # the shipped probe set is preselected
    assert at.text_input(key="temporal_data").value.endswith("assets/probe")
    at.multiselect(key="temporal_perturbations").set_value(["shuffle", "reverse", "sweep"])
    at.number_input(key="temporal_permutations").set_value(1)
    at.button(key="temporal_run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    figures = charts(at)
    assert set(figures) == {"temporal_accuracy", "temporal_sweep", "temporal_sensitivity",
                            "reverse_confusion"}
    bars = {trace["name"]: trace for trace in figures["temporal_accuracy"]["data"]}
    assert set(bars) == set(models)
    assert values(bars["tsn"]["x"]) == ["original", "shuffle", "reverse"]
    sweep = {trace["name"]: values(trace["y"]) for trace in figures["temporal_sweep"]["data"]}
    assert len(set(sweep["tsn"])) == 1  # order-blind: a flat line
    temporal = sweep[models[1]]
    assert temporal[0] > temporal[-1] + 0.2  # reads order: reversed is far worse than original
    heatmap = figures["temporal_sensitivity"]["data"][0]
    assert values(heatmap["x"]) == models and len(values(heatmap["y"])) == 14
    assert [b.label for b in at.get("download_button")][:2] == ["results.csv", "results.parquet"]
    # the confusion follows the chosen model
    at.selectbox(key="temporal_confusion_model").set_value(models[1]).run()
    assert charts(at)["reverse_confusion"]["layout"]["meta"]["model"] == models[1]


def test_single_clip_shows_each_order_with_predictions() -> None:
    models = demo_pair()
    at = open_page(models)
    at.multiselect(key="temporal_perturbations").set_value(["shuffle", "reverse", "freeze"])
    at.number_input(key="temporal_permutations").set_value(2)
    at.radio(key="temporal_target").set_value("The chosen clip").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    # original + first shuffle + reverse + first freeze: one image strip each
    assert len(at.get("image")) == 4
    table = at.dataframe[0].value
    assert len(table) == 2 * 6 and set(table["model"]) == set(models)
    tsn = table[(table["model"] == "tsn") & (table["perturbation"] != "freeze")]
    assert tsn["prediction"].nunique() == 1


def test_no_models_chosen_says_so() -> None:
    at = open_page([])
    assert any("Choose one or more models" in i.value for i in at.info)
    assert not at.get("plotly_chart")
