"""Progress and stop: long commands draw a bar with an ETA on stderr (not with --quiet), app pages say up
front how long an analysis takes on this model, and a stopped run leaves no result behind."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from workbench.cli import main, progress
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.models import load_model
from workbench.models.pass_time import about, pass_time

from .test_app import APP, error_texts, one_thread  # noqa: F401 (one_thread: the module's autouse fixture)

pytestmark = pytest.mark.skipif(not demo_checkpoints(), reason="needs a shipped demo model")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr as if a terminal watched it (under pytest it is a capture buffer, where the bar is silent)."""
    monkeypatch.setattr(progress, "interactive", lambda: True)


def _evaluate(capsys: pytest.CaptureFixture, *extra: str) -> str:
    assert main(["evaluate", str(demo_checkpoints()["tsn"]), "--data", str(demo_probe_dir()), *extra]) == 0
    return capsys.readouterr().err


def test_a_multi_clip_command_shows_a_bar_with_an_eta(terminal: None, capsys) -> None:
    videos = len(list(demo_probe_dir().rglob("*.mp4")))
    err = _evaluate(capsys)
    assert "evaluating" in err and "ETA" in err and f"{videos}/{videos} videos" in err


def test_quiet_silences_the_bar(terminal: None, capsys) -> None:
    assert "ETA" not in _evaluate(capsys, "--quiet")


def test_no_bar_when_stderr_is_not_a_terminal(capsys) -> None:
    assert "ETA" not in _evaluate(capsys)


def test_pass_time_is_measured_once_per_set_of_weights() -> None:
    model = load_model(demo_checkpoints()["gsm"])
    first = pass_time(model)
    assert 0 < first.forward and 0 < first.backward
    assert pass_time(model) is first  # the second ask reuses the measurement
    assert first.seconds(forwards=2, backwards=3) == pytest.approx(2 * first.forward + 3 * first.backward)
    assert [about(s) for s in (0.2, 7, 38, 600)] == [
        "under a second", "about 7 s", "about 40 s", "about 10 min"]


def _stopped_run() -> None:
    """A page script: run_heavy whose analysis reports progress, and the progress callback stops it (as
    Streamlit does when Stop reruns the page: it raises at the next display call)."""
    import streamlit as st
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from analysis.gates import intervention_accuracy
    from app_pages.heavy import run_heavy
    from workbench.demo import demo_checkpoints, demo_probe_dir
    from workbench.models import load_model

    model = load_model(demo_checkpoints()["gsm"])

    def stop(done: int, total: int) -> None:
        raise StopException()

    st.session_state["before"] = True
    run_heavy(("stopped-run-test",), "a stopped run", 1, 1.0,
              lambda: intervention_accuracy(model, demo_probe_dir(), max_clips=2, progress=stop))
    st.session_state["after"] = True


def test_a_stopped_run_leaves_no_result_and_frees_its_turn() -> None:
    from app_pages.heavy import result_store, server_queue

    at = AppTest.from_function(_stopped_run, default_timeout=120).run()
    assert not at.exception
    assert at.session_state["before"] and "after" not in at.session_state
    assert result_store().get(("stopped-run-test",)) is None
    labels = [job["label"] for job in server_queue().snapshot()["running"]]
    assert "a stopped run" not in labels  # its turn is free for the next job


def test_attribution_page_says_up_front_how_long_it_takes() -> None:
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("app_pages/attribution.py").run()
    at.multiselect(key="attr_models").set_value(list(demo_checkpoints())[:1])
    at.multiselect(key="attr_methods").set_value(["saliency", "integrated_gradients"]).run()
    assert not at.exception and not error_texts(at)
    notes = [c.value for c in at.caption if c.value.startswith("Estimated")]
    assert notes and ("about" in notes[0] or "under a second" in notes[0]), [c.value for c in at.caption]
    assert any(b.label == "Stop" for b in at.button)
    torch.set_num_threads(1)
