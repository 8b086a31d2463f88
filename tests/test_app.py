"""The Streamlit app through AppTest: the shell, the Models page, and bad input shown as errors."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

from workbench import build_model, save_model
from workbench.app_state import probe_clips
from workbench.demo import demo_checkpoints, demo_manifest
from workbench.probe import class_kinds, class_names, mirror_table

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FIGURES = ("cost", "accuracy_cost", "scheme_diagram", "history", "per_class", "confusion", "frames",
           "probability")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two threads wait on each other (FIELD_NOTES)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def app() -> AppTest:
    """The app after its first run (models load once per test process: they are cached)."""
    return AppTest.from_file(APP, default_timeout=60).run()


def fresh_app() -> AppTest:
    """A new session of the app (own session state; caches are shared)."""
    return AppTest.from_file(APP, default_timeout=60).run()


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly figures as JSON, keyed by the name each builder gives its figure."""
    figures = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        figures[spec["layout"]["meta"]["figure"]] = spec
    return figures


def upload_checkpoint(at: AppTest, name: str, data: bytes) -> AppTest:
    """Upload `data` as a checkpoint through the sidebar and rerun."""
    (uploader,) = [u for u in at.sidebar.get("file_uploader") if "checkpoint" in u.label.lower()]
    uploader.set_value((name, data, "application/octet-stream"))
    return at.run()


def tiny_model(class_list: list[str] | None = None) -> torch.nn.Module:
    """An untrained demo-sized TSM model (probe classes unless told otherwise)."""
    options: dict[str, Any] = {"class_names": class_list}
    if class_list is None:
        options = {"class_names": class_names(), "mirror_of": mirror_table(), "class_kinds": class_kinds()}
    torch.manual_seed(0)
    return build_model("tsm", backbone="resnet-tiny", num_classes=len(options["class_names"]), frames=8,
                       input_size=48, **options)


def checkpoint_bytes(model: torch.nn.Module, tmp_path: Path) -> bytes:
    """What save_model writes for `model`."""
    return save_model(model, tmp_path / "model.pt", history=[{"epoch": 1, "train_loss": 2.0}]).read_bytes()


def error_texts(at: AppTest) -> list[str]:
    """The text of every st.error on the page and in the sidebar."""
    return [e.value for e in at.error]


def test_app_runs_and_preselects_the_demo_zoo(app: AppTest) -> None:
    """No exception; the sidebar lists and selects every shipped demo model (8 once all are trained)."""
    assert not app.exception, [e.value for e in app.exception]
    assert not error_texts(app)
    (models,) = [m for m in app.sidebar.multiselect if m.label == "Models to compare"]
    assert models.options == list(demo_checkpoints())
    assert models.value == list(demo_checkpoints())
    if len(demo_manifest()["models"]) == 8:
        assert len(models.value) == 8


def test_models_table_has_cost_and_manifest_accuracy(app: AppTest) -> None:
    """One row per demo model: cost relative to tsn and the manifest's accuracy metrics."""
    if not demo_checkpoints():
        pytest.fail("the demo zoo is not shipped (workbench/assets/manifest.json)")
    table = app.dataframe[0].value
    assert list(table["model"]) == list(demo_checkpoints())
    for column in ("params_M", "gflops", "params_vs_tsn", "flops_vs_tsn", "latency_ms", "latency_vs_tsn",
                   "accuracy", "temporal_accuracy", "static_accuracy", "pair_accuracy", "reverse_to_mirror"):
        assert column in table.columns, column
    rows = table.set_index("scheme")
    assert (rows["params_M"] > 0).all() and (rows["gflops"] > 0).all() and (rows["latency_ms"] > 0).all()
    if "tsn" in rows.index:
        assert rows.loc["tsn", "flops_vs_tsn"] == pytest.approx(1.0)
    for entry in demo_manifest()["models"]:
        if entry["scheme"] in rows.index:
            for metric in ("accuracy", "temporal_accuracy", "reverse_to_mirror"):
                assert rows.loc[entry["scheme"], metric] == pytest.approx(entry["metrics"][metric])


def test_models_page_draws_every_figure(app: AppTest) -> None:
    """Every Models figure is drawn with the traces its data calls for."""
    demo = list(demo_checkpoints())
    if not demo:
        pytest.fail("the demo zoo is not shipped (workbench/assets/manifest.json)")
    figures = charts(app)
    expected = set(FIGURES) if probe_clips() else set(FIGURES) - {"frames", "probability"}
    assert expected <= set(figures)
    diagram = figures["scheme_diagram"]["data"]
    assert [t["name"] for t in diagram] == demo and {t["type"] for t in diagram} == {"heatmap"}
    assert [t["name"] for t in figures["cost"]["data"]] == ["params × TSN", "FLOPs × TSN", "latency × TSN"]
    assert list(figures["cost"]["data"][0]["x"]) == demo
    history = figures["history"]["data"]
    assert {t["name"] for t in history if t.get("showlegend") is not False} == set(demo)
    assert all(t["type"] == "scatter" and len(t["x"]) > 0 for t in history)
    (per_class,) = figures["per_class"]["data"]
    assert list(per_class["y"]) == demo and set(per_class["x"]) == set(class_names())
    assert [t["name"] for t in figures["confusion"]["data"]] == demo
    if probe_clips():
        assert [t["type"] for t in figures["frames"]["data"]] == ["image"] * 8
        forward, reverse = figures["probability"]["data"]
        assert list(forward["y"]) == demo and list(reverse["y"]) == demo


def test_predictions_follow_the_chosen_clip(app: AppTest) -> None:
    """Choosing another probe clip re-predicts: the prediction table is about that clip."""
    clips = probe_clips()
    if not demo_checkpoints() or len(clips) < 2:
        pytest.fail("the demo zoo or its probe clips are missing from workbench/assets")
    at = fresh_app()
    at.sidebar.selectbox(key="probe_clip").select_index(len(clips) - 1).run()
    assert not at.exception
    predictions = at.dataframe[-1].value
    assert list(predictions["model"]) == list(demo_checkpoints())
    assert set(predictions["predicted"]) <= set(class_names())
    assert any(clips[-1].label in caption.value for caption in at.caption)


@pytest.mark.parametrize("name, data", [
    ("random.pt", bytes(range(256)) * 40),
    ("empty.pt", b""),
    ("truncated.pt", b"PK\x03\x04" + b"\x00" * 64),
    ("notes.pt", b"hello world\n" * 10),  # torch.load raises KeyError on this one
])
def test_corrupt_checkpoint_upload_is_an_error(name: str, data: bytes) -> None:
    """A corrupt upload shows one error naming the file, no exception, and is not added."""
    at = upload_checkpoint(fresh_app(), name, data)
    assert not at.exception, [e.value for e in at.exception]
    (message,) = error_texts(at)
    assert name in message and ("cannot load" in message or "refusing to load" in message), message
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    assert models.value == list(demo_checkpoints())


class Trap:
    """Unpickling this would run code: it would create the file named in `marker`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_code_carrying_pickle_is_refused_and_not_run(tmp_path: Path) -> None:
    """A pickle that needs weights_only=False is refused with a message; its code never runs."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Trap(str(control)), protocol=2)).close()
    assert control.exists()  # the trap is real: plain unpickling runs it
    marker = tmp_path / "code-ran"
    # protocol 2, as torch.save writes: the payload is a plain GLOBAL builtins.open + REDUCE
    data = pickle.dumps({"format": "gate-shift-workbench", "state_dict": Trap(str(marker))}, protocol=2)
    at = upload_checkpoint(fresh_app(), "trap.pt", data)
    assert not at.exception
    assert any("weights_only=False" in text for text in error_texts(at)), error_texts(at)
    assert not marker.exists()


def test_foreign_checkpoint_is_an_error(tmp_path: Path) -> None:
    """A loadable torch file that is not ours (a bare state dict) is named as such."""
    path = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, path)
    at = upload_checkpoint(fresh_app(), "foreign.pt", path.read_bytes())
    assert not at.exception
    assert any("not a workbench checkpoint" in text for text in error_texts(at)), error_texts(at)


def test_uploaded_checkpoint_is_added_and_scored(tmp_path: Path) -> None:
    """A good upload joins the selection; with probe classes it is scored on the probe clips."""
    at = upload_checkpoint(fresh_app(), "mine.pt", checkpoint_bytes(tiny_model(), tmp_path))
    assert not at.exception and not error_texts(at)
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    assert models.value[-1] == "mine (tsm)"
    row = at.dataframe[0].value.set_index("model").loc["mine (tsm)"]
    if probe_clips():
        assert row["measured_on"].startswith("shipped probe clips")
        assert 0.0 <= row["accuracy"] <= 1.0


def test_checkpoint_with_other_classes_says_why_it_is_not_scored(tmp_path: Path) -> None:
    """A model trained on other classes is listed, with the reason it has no probe accuracy."""
    model = tiny_model([f"action_{i}" for i in range(5)])
    at = upload_checkpoint(fresh_app(), "other.pt", checkpoint_bytes(model, tmp_path))
    assert not at.exception and not error_texts(at)
    row = at.dataframe[0].value.set_index("model").loc["other (tsm)"]
    if probe_clips():
        assert "not the probe classes" in row["measured_on"]
        assert any("not the probe classes" in w.value for w in at.warning)


def test_checkpoint_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    """Typing a missing checkpoint path gives an error, not an exception."""
    at = fresh_app()
    at.sidebar.text_input(key="checkpoint_path").input(str(tmp_path / "nope.pt")).run()
    assert not at.exception
    assert any("no such file" in text for text in error_texts(at)), error_texts(at)


def test_video_that_is_not_a_video_is_an_error(tmp_path: Path) -> None:
    """A clip path that is not a video gives a decode error in the sidebar, not an exception."""
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    at = fresh_app()
    at.sidebar.radio(key="clip_origin").set_value("Path").run()
    at.sidebar.text_input(key="video_path").input(str(bad)).run()
    assert not at.exception
    assert any("cannot decode" in text for text in error_texts(at)), error_texts(at)


def test_uploaded_video_is_predicted_and_a_broken_one_is_an_error() -> None:
    """An uploaded mp4 becomes the clip every model predicts; a broken upload is a sidebar error."""
    clips = probe_clips()
    if not demo_checkpoints() or not clips:
        pytest.fail("the demo zoo or its probe clips are missing from workbench/assets")
    at = fresh_app()
    at.sidebar.radio(key="clip_origin").set_value("Upload").run()
    at.sidebar.file_uploader(key="video_upload").set_value(
        ("mine.mp4", Path(clips[0].path).read_bytes(), "video/mp4")).run()
    assert not at.exception and not error_texts(at)
    assert any("mine.mp4" in caption.value for caption in at.caption)
    assert list(at.dataframe[-1].value["model"]) == list(demo_checkpoints())
    at.sidebar.file_uploader(key="video_upload").set_value(("broken.mp4", b"\x00" * 500, "video/mp4")).run()
    assert not at.exception
    assert any(text.startswith("cannot decode 'broken.mp4'") for text in error_texts(at)), error_texts(at)
