"""The Probes page in headless chromium: run the three analyses on the demo zoo, every figure draws, then
the Reports page builds a report of them. Screenshots: tests/e2e/screenshots/probes-*.png."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.demo import demo_checkpoints

from .test_browser import (
    ERROR_BOX,
    RUN_TIMEOUT_MS,
    assert_no_exception,
    build_report_preview,
    full_screenshot,
    wait_for_charts,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

FIGURES = ("receptive_field", "reach", "arrow_of_time", "static_dynamic", "unit_shares", "frames")


def figure_names(page: Any) -> list[str]:
    """The `layout.meta.figure` name of every plotly chart drawn on the page."""
    return page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                         ".map(d => (d.layout && d.layout.meta && d.layout.meta.figure) || '')")


# each button and the figures its run adds to the page
RUNS = {
    "Measure the receptive field": ("receptive_field", "reach"),
    "Probe the arrow of time": ("arrow_of_time",),
    "Estimate static and dynamic bias": ("static_dynamic", "unit_shares"),
}


def wait_for_figures(page: Any, names: tuple[str, ...]) -> None:
    """Wait until charts with these figure names are on the page: the script state alone can read
    "not running" between a click and the rerun it asks for on a slow machine."""
    page.wait_for_function(
        "names => { const drawn = Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => (d.layout && d.layout.meta && d.layout.meta.figure) || '');"
        " return names.every(n => drawn.includes(n)); }",
        arg=list(names), timeout=RUN_TIMEOUT_MS)


def test_probes_run_draw_and_report(page: Any, app_url: str) -> None:
    assert demo_checkpoints(), "the demo zoo is shipped"
    page.goto(f"{app_url}/probes")
    wait_for_run(page)
    assert_no_exception(page)
    for button, names in RUNS.items():
        page.get_by_role("button", name=button).click()
        wait_for_run(page)
        if not page.locator(ERROR_BOX).count():
            wait_for_figures(page, names)
            wait_for_run(page)
        assert_no_exception(page)
        assert page.locator(ERROR_BOX).count() == 0, page.locator(ERROR_BOX).all_inner_texts()
    assert wait_for_charts(page) >= len(FIGURES)
    drawn = figure_names(page)
    assert set(FIGURES) <= set(drawn), drawn
    if demo_checkpoints(appearance_free=True):
        assert "appearance_free" in drawn
    full_screenshot(page, "probes-results")

    page.locator('[data-testid="stSidebarNav"] a', has_text="Reports").click()
    page.wait_for_url("**/reports")
    wait_for_run(page)
    for title in ("temporal receptive field", "arrow of time", "static and dynamic bias"):
        assert page.get_by_text(f"This session's {title}").count() == 1, title
    assert build_report_preview(page) >= 5  # receptive field 2, arrow of time 1, static/dynamic 2
    full_screenshot(page, "probes-report")
    assert page.locator(ERROR_BOX).count() == 0
