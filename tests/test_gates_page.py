"""The Gates & Shifts page through AppTest with a real GSM checkpoint and the shipped probe clips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_pages
from tests.conftest import randomize
from workbench import build_model, save_model
from workbench.app_state import probe_clips
from workbench.demo import demo_checkpoints
from workbench.probe import class_kinds, class_names, mirror_table

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "app_pages/gates.py"
FIGURES = {"gate_overlay", "gate_time", "gate_layers", "gate_histogram", "routing_heatmap", "routing_bars",
           "channel_time", "alignment", "alignment_maps", "interventions"}


@pytest.fixture(autouse=True)
def gates_page_registered(monkeypatch) -> Iterator[None]:
    """The page is registered in app_pages.PAGES; run with one torch thread."""
    assert "gates.py" in [file for file, _, _ in app_pages.PAGES]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _charts(at: AppTest) -> dict[str, dict[str, Any]]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"]["meta"]["figure"]: spec for spec in specs}


def _gsm_checkpoint(tmp_path: Path) -> Path:
    model = build_model("gsm", backbone="resnet-tiny", num_classes=len(class_names()), frames=8,
                        input_size=48, class_names=class_names(), mirror_of=mirror_table(),
                        class_kinds=class_kinds())
    return save_model(randomize(model, seed=3), tmp_path / "mygsm.pt")


def _with_gsm(tmp_path: Path) -> AppTest:
    """The page (opened first: the landing page would score every demo model) with our GSM chosen."""
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page(PAGE).run()
    demo = demo_checkpoints()
    gated = [s for s in at.selectbox if s.key == "gates_model"]
    if "gsm" in demo:  # the shipped GSM is preselected
        assert gated and gated[0].value == "gsm"
    at.sidebar.text_input(key="checkpoint_path").input(str(_gsm_checkpoint(tmp_path))).run()
    at.selectbox(key="gates_model").set_value("mygsm (gsm)").run()
    return at


@pytest.mark.slow
@pytest.mark.skipif(not probe_clips(), reason="no shipped probe clips")
def test_page_draws_every_figure_for_a_gsm_model_on_a_probe_clip(tmp_path: Path) -> None:
    at = _with_gsm(tmp_path)
    assert not at.exception, at.exception
    (model_box,) = [s for s in at.selectbox if s.key == "gates_model"]
    assert model_box.value == "mygsm (gsm)"
    charts = _charts(at)
    assert set(charts) == FIGURES
    routing = charts["routing_heatmap"]
    assert [t["type"] for t in routing["data"]] == ["heatmap", "heatmap"]  # GSM and TSM side by side
    assert [a["text"] for a in routing["layout"]["annotations"]] == ["gsm", "tsm"]
    alignment = at.dataframe[0].value
    assert len(alignment) == 4 and alignment["gate_in_mask_share"].between(0, 1).all()
    interventions = at.dataframe[1].value
    assert set(interventions["mode"]) == {"none", "zero", "plus", "minus", "tsm"}

    # the frame slider moves the overlay to another frame; the layer box changes the per-layer figures
    at.slider(key="gates_frame").set_value(3).run()
    assert "(frame 3)" in _charts(at)["gate_overlay"]["layout"]["title"]["text"]
    at.selectbox(key="gates_layer").set_value("layer3.0.gsm").run()
    assert "layer3.0.gsm" in _charts(at)["channel_time"]["layout"]["title"]["text"]
    overlay = _charts(at)["gate_overlay"]
    heat = [t for t in overlay["data"] if t["type"] == "heatmap"][0]
    assert heat["z"]["shape"] == "48, 48"  # 12x12 gates upsampled to the 48 px frame

    at.button(key="gates_accuracy_run").click().run()
    assert not at.exception
    assert "intervention_accuracy" in _charts(at)
    assert at.dataframe[2].value["clips"].iloc[0] == len(probe_clips())


def test_page_without_gated_models_says_what_to_do() -> None:
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page(PAGE).run()
    assert not at.exception
    if not any(s.key == "gates_model" for s in at.selectbox):  # no demo gsm/gsf shipped yet
        assert any("gsm/gsf checkpoint" in i.value for i in at.info)


def test_demo_gsm_is_preselected_and_only_gated_models_are_offered(tmp_path: Path, monkeypatch) -> None:
    import workbench.app_state as app_state

    gsm = _gsm_checkpoint(tmp_path)
    tsm = save_model(build_model("tsm", backbone="resnet-tiny", num_classes=len(class_names()), frames=8,
                                 input_size=48, class_names=class_names()), tmp_path / "tsm.pt")
    monkeypatch.setattr(app_state, "demo_checkpoints", lambda: {"tsm": tsm, "gsm": gsm})
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    box = at.selectbox(key="gates_model")
    assert box.value == "gsm" and list(box.options) == ["gsm"]
