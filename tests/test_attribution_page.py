"""The Attribution page through AppTest with the shipped demo checkpoints and probe clips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_pages
from analysis.attribution import attribute, localisation
from workbench.app_state import probe_clips
from workbench.demo import demo_checkpoints
from workbench.masks import clip_mask, probe_mask
from workbench.models import load_model
from workbench.video import load_clip

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "app_pages/attribution.py"

pytestmark = pytest.mark.skipif(not demo_checkpoints() or not probe_clips(),
                                reason="needs a shipped demo model and probe clips")


@pytest.fixture(autouse=True)
def attribution_page_registered(monkeypatch) -> Iterator[None]:
    """The page is registered in app_pages.PAGES; run with one torch thread."""
    assert "attribution.py" in [file for file, _, _ in app_pages.PAGES]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _open(models: list[str], methods: list[str]) -> AppTest:
    """The page with the given demo models and methods chosen (on the sidebar's default probe clip)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE).run()
    at.multiselect(key="attr_models").set_value(models)
    at.multiselect(key="attr_methods").set_value(methods).run()
    assert not at.exception, at.exception
    return at


def test_page_draws_maps_profiles_curves_and_the_metrics_the_library_computes() -> None:
    models = list(demo_checkpoints())[:2]
    at = _open(models, ["saliency", "temporal_ablation"])
    charts = _charts(at)
    names = [c["layout"]["meta"]["figure"] for c in charts]
    # each method tab: overlay grid, temporal profile, deletion/insertion (+ agreement of the models);
    # the methods expander: one agreement heatmap per model
    two = len(models) > 1
    assert names.count("attribution_grid") == names.count("temporal_profile") == 2
    assert names.count("deletion_insertion") == 2
    assert names.count("agreement") == (2 if two else 0) + len(models)
    grid = charts[names.index("attribution_grid")]
    assert sum(t["type"] == "image" for t in grid["data"]) == len(models) * 8  # models x frames
    assert len(charts[names.index("temporal_profile")]["data"]) == len(models)

    table = at.dataframe[0].value
    assert len(table) == 2 * len(models)
    assert set(table["method"]) == {"Saliency", "Temporal ablation"}
    # known answer: the page shows exactly what the library computes on the same clip
    clip_path = at.session_state["chosen_clip"].path
    model = load_model(demo_checkpoints()[models[0]])
    clip = load_clip(clip_path, model.spec)
    direct = attribute(model, clip, "saliency", target=int(model(clip).argmax()))
    expected = localisation(direct.map, clip_mask(probe_mask(clip_path), model.spec))
    row = table[(table["model"] == models[0]) & (table["method"] == "Saliency")].iloc[0]
    assert row["energy_in_mask"] == pytest.approx(expected.energy_in_mask, rel=1e-4)
    assert row["area_share"] == pytest.approx(expected.area_share)
    assert row["explains"] == row["predicted"]


def test_mirror_target_explains_the_mirror_class() -> None:
    model_name = list(demo_checkpoints())[0]
    at = _open([model_name], ["gradcam"])
    at.radio(key="attr_target").set_value("mirror").run()
    assert not at.exception, at.exception
    spec = load_model(demo_checkpoints()[model_name]).spec
    if at.dataframe:
        row = at.dataframe[0].value.iloc[0]
        assert row["explains"] == spec.mirror_of[row["predicted"]]
    else:  # the predicted class is static: no mirror, and the page says so
        assert any("No mirror" in w.value for w in at.warning)
    # Grad-CAM on an earlier stage: a finer map, recomputed (a new cache key), still drawn
    at.radio(key="attr_target").set_value("predicted").run()
    at.selectbox(key="attr_layer").set_value("layer2").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value.iloc[0]["explains"] == at.dataframe[0].value.iloc[0]["predicted"]
