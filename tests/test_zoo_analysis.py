"""Model comparison data (analysis.zoo, analysis.schemes) and the figures drawn from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import figures
from analysis.schemes import OFFSETS, ROUTES, scheme_routing
from analysis.zoo import (
    ModelSummary,
    complexity_table,
    history_frame,
    per_class_frame,
    predict_video,
    prediction_frame,
    probability_frame,
    scheme_table,
)
from workbench import build_model
from workbench.app_state import probe_clips, store_upload, unique_label
from workbench.models import SCHEMES

T = OFFSETS.index(0)


def sources(scheme: str, slices: int = 8, **options: float) -> list[set[int]]:
    """Per channel slice, the frame offsets a block of `scheme` takes features from."""
    routing = scheme_routing(scheme, slices, options)
    return [{OFFSETS[i] for i in np.nonzero(row)[0]} for row in routing.routes]


def test_routing_follows_each_operator() -> None:
    """TSN copies frame t; TSM shifts 1/8 back and 1/8 forward; GSM gates half each way; 3D sees t±1."""
    assert sources("tsn") == [{0}] * 8
    assert sources("tsm") == [{1}, {-1}] + [{0}] * 6
    assert sources("tsm", shift_fraction=0.25) == [{1}] * 2 + [{-1}] * 2 + [{0}] * 4
    assert sources("gsm") == [{0, 1}] * 4 + [{-1, 0}] * 4
    assert sources("gst") == [{-1, 0, 1}] * 4 + [{0}] * 4
    for scheme in ("c3d", "r2plus1d", "csn"):
        assert sources(scheme) == [{-1, 0, 1}] * 8
    assert set(scheme_routing("csn").routes[:, T]) == {ROUTES.index("depthwise")}
    assert set(scheme_routing("gsf").routes[:, T]) == {ROUTES.index("gated")}
    with pytest.raises(ValueError, match="unknown scheme"):
        scheme_routing("nope")


def test_complexity_table_is_relative_to_tsn_and_restores_threads() -> None:
    """Params/FLOPs from zoo_table plus interleaved latency; tsn is the unit; threads are restored."""
    before = torch.get_num_threads()
    table = complexity_table(("resnet-tiny", 4, 32, 5), ["gsm"], rounds=2).set_index("scheme")
    assert torch.get_num_threads() == before
    assert list(table.index) == ["tsn", "gsm"]
    assert table.loc["tsn", ["params_vs_tsn", "flops_vs_tsn", "latency_vs_tsn"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["gsm", "flops_vs_tsn"] > 1.0 and table.loc["gsm", "latency_ms"] > 0


def test_tables_and_figures_from_plain_results() -> None:
    """History, per-class and scheme tables, and the figures' traces, from plain dicts."""
    spec = build_model("tsm", backbone="resnet-tiny", num_classes=2, frames=4, input_size=32,
                       class_names=["a", "b"]).spec
    summaries = [ModelSummary("m1", spec, 1000, [{"train_loss": 1.0}, {"train_loss": 0.5}],
                              {"accuracy": 0.5, "per_class": {"a": 1.0, "b": 0.0}}, "somewhere"),
                 ModelSummary("m2", spec, 1000, metrics_note="not scored: why")]
    history = history_frame({s.label: s.history for s in summaries})
    assert history["epoch"].tolist() == [1, 2] and set(history["model"]) == {"m1"}
    table = scheme_table(summaries, {})
    assert table["accuracy"].tolist()[0] == 0.5 and np.isnan(table["accuracy"].tolist()[1])
    assert table["measured_on"].tolist() == ["somewhere", "not scored: why"]
    assert np.isnan(table["flops_vs_tsn"]).all()  # no complexity table: no cost, no crash
    per_class = per_class_frame({s.label: s.metrics for s in summaries})
    assert per_class.loc["m1"].tolist() == [1.0, 0.0] and list(per_class.index) == ["m1"]
    assert figures.history_figure(history).layout.meta == {"figure": "history"}
    diagram = figures.scheme_diagram([scheme_routing(s) for s in SCHEMES])
    assert [t.name for t in diagram.data] == list(SCHEMES)


@pytest.mark.skipif(not probe_clips(), reason="needs the shipped probe clips")
def test_predict_video_shows_the_sampled_frames() -> None:
    """The prediction carries the frames the model saw and probabilities forwards and reversed."""
    torch.manual_seed(0)
    model = build_model("tsn", backbone="resnet-tiny", num_classes=3, frames=8, input_size=48,
                        class_names=["x", "y", "z"], mirror_of={"x": "y", "y": "x"}).eval()
    clip = probe_clips()[0]
    prediction = predict_video(model, clip.path)
    assert prediction.frames.shape == (8, 48, 48, 3) and prediction.frames.dtype == np.uint8
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # TSN averages frames: the reversed clip gives the same probabilities
    np.testing.assert_allclose(prediction.probabilities, prediction.reversed_probabilities, atol=1e-5)
    rows = prediction_frame({"m": prediction}, "x", "y")
    assert rows.columns.tolist()[-1] == "reversed_is_mirror"
    assert probability_frame({"m": prediction}).columns.tolist() == ["x", "y", "z"]
    figure = figures.frames_figure(prediction.frames, prediction.indices)
    assert [t.type for t in figure.data] == ["image"] * 8


def test_uploads_are_stored_once_under_a_safe_name(tmp_path: Path) -> None:
    """Same bytes, same file; path separators in a name never leave the upload folder."""
    first = store_upload("../../evil name.pt", b"abc", tmp_path)
    assert first.parent == tmp_path and first.name.endswith("-evil_name.pt")
    assert store_upload("../../evil name.pt", b"abc", tmp_path) == first
    assert unique_label("gsm", {"gsm", "gsm (2)"}) == "gsm (3)"
