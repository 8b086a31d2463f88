"""Concurrent browser sessions share one loaded model and each sees its own results.

Three sessions open Gates & Shifts on three different probe clips at the same moment, so the server
computes their gate reports at once on the one cached demo GSM. Each session's figures must be the
ones computed for its clip alone (here, in the test process). Before models were read-only, gate
capture put hooks on the shared model and sessions got each other's figures.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from analysis.gates import gate_report
from analysis.gates_figures import report_figures
from workbench import load_model
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.masks import probe_mask

from .test_browser import assert_no_exception, wait_for_charts, wait_for_run

pytestmark = pytest.mark.e2e

# clips no other browser test opens, so the server has no cached report for them
CLIPS = ("rotate_ccw_00001", "grow_00001", "fade_out_00000")
COMPARED = ("gate_time", "gate_layers", "routing_heatmap", "alignment", "interventions")
FIGURES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => ({name: el.layout && el.layout.meta && el.layout.meta.figure, data: el.data}))"""


def numbers(trace: Any) -> np.ndarray:
    """The numeric values a trace draws (z for heatmaps, else y), flattened: of a plotly trace object
    here, of its JSON as the browser holds it there."""
    get = trace.get if isinstance(trace, dict) else lambda key: getattr(trace, key, None)
    values = get("z") if get("z") is not None else get("y")
    if values is None:
        return np.array([])
    if isinstance(values, dict):  # plotly's typed-array JSON: {"dtype": "f8", "bdata": base64, "shape": ...}
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).astype(float)
    flat = np.asarray(values, dtype=object).ravel()
    return np.asarray([np.nan if v is None else v for v in flat], dtype=float)


def alone(clip: str) -> dict[str, list[np.ndarray]]:
    """The compared figures of the demo GSM on one clip, computed in this process."""
    video = next(demo_probe_dir().glob(f"*/{clip}.mp4"))
    report = gate_report(load_model(demo_checkpoints()["gsm"]), video, probe_mask(video))
    figures = report_figures(report)
    return {name: [numbers(trace) for trace in figures[name].data] for name in COMPARED}


def test_three_sessions_at_once_each_get_their_own_gate_figures(browser: Any, app_url: str) -> None:
    expected = {clip: alone(clip) for clip in CLIPS}
    contexts = [browser.new_context(viewport={"width": 1500, "height": 1000}) for _ in CLIPS]
    try:
        pages = [context.new_page() for context in contexts]
        for page, clip in zip(pages, CLIPS):  # all three requests go out before any finishes
            page.goto(f"{app_url}/gates?clip={clip}", wait_until="commit")
        for page, clip in zip(pages, CLIPS):
            wait_for_run(page)
            assert_no_exception(page)
            assert wait_for_charts(page) >= len(COMPARED)
            shown = {f["name"]: f["data"] for f in page.evaluate(FIGURES_JS) if f["name"] in COMPARED}
            assert set(shown) == set(COMPARED), clip
            for name in COMPARED:
                got = [numbers(trace) for trace in shown[name]]
                want = expected[clip][name]
                assert len(got) == len(want), (clip, name)
                for a, b in zip(got, want):
                    same = a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
                    assert same, (clip, name)
    finally:
        for context in contexts:
            context.close()
