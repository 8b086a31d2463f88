"""The real app in headless chromium: every page renders, charts draw, no exception or error box.

Full-page screenshots land in tests/e2e/screenshots/<page>.png (gitignored) for a human to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app_pages import PAGES, url_path
from workbench.app_state import probe_clips
from workbench.demo import demo_checkpoints

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 180_000
EXCEPTION = '[data-testid="stException"]'
ERROR_BOX = '[data-testid="stAlertContentError"]'
CHART = '[data-testid="stPlotlyChart"]'
# plotly draws heatmaps and images as <image>, bars and lines as .trace groups
DRAWN = ".js-plotly-plot .main-svg .cartesianlayer .trace, .js-plotly-plot .main-svg image"


def expected_charts(file: str) -> int:
    """How many plotly charts a page must show with the shipped demo zoo and probe clips."""
    if file == "models.py" and demo_checkpoints():
        return 8 if probe_clips() else 6
    return 0


# The run is over (Streamlit marks the app root with its script state), the page has content (the
# state also reads notRunning before the first run starts) and no lazily loaded element (charts,
# dataframes) still shows its loading skeleton.
SETTLED = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.dataset.testScriptState === "notRunning"
        && document.querySelector('[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]')
        && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]');
}"""


def wait_for_run(page: Any) -> None:
    """Wait until the script run has finished and the page has settled (checked twice, 0.5 s apart)."""
    for _ in range(2):
        page.wait_for_function(SETTLED, timeout=RUN_TIMEOUT_MS)
        page.wait_for_timeout(500)


def wait_for_charts(page: Any) -> int:
    """Wait until every plotly chart on the page has drawn its traces; return how many there are."""
    charts = page.locator(CHART)
    for i in range(charts.count()):
        chart = charts.nth(i)
        if not chart.is_visible():  # a chart in an inactive tab draws when its tab is opened
            continue
        chart.scroll_into_view_if_needed()
        chart.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        chart.locator(DRAWN).first.wait_for(state="attached", timeout=60_000)
    return charts.count()


def assert_no_exception(page: Any) -> None:
    """Fail with the exception's text if Streamlit shows one."""
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        pytest.fail("Streamlit exception on the page:\n" + "\n---\n".join(boxes.all_inner_texts()))


def full_screenshot(page: Any, name: str) -> Path:
    """Screenshot the whole app: grow the viewport to the content (the main area scrolls, not the page)."""
    height = page.evaluate(
        "() => Math.max(...['[data-testid=\"stMain\"]', '[data-testid=\"stSidebarContent\"]']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1500, "height": min(20_000, int(height) + 40)})
    page.wait_for_timeout(1200)  # plotly relayouts on resize; st.dataframe draws on a canvas
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def build_report_preview(page: Any) -> int:
    """On the Reports page: build the report and wait until its preview has drawn; every figure drawn,
    returns how many there are."""
    page.get_by_role("button", name="Build report").click()
    page.get_by_text("Preview").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    preview = page.frame_locator("iframe[srcdoc]")
    preview.locator(".figure .main-svg").first.wait_for(timeout=RUN_TIMEOUT_MS)
    figures = preview.locator(".figure")
    assert preview.locator(".figure.js-plotly-plot").count() == figures.count()
    return figures.count()


@pytest.mark.parametrize("index", range(len(PAGES)), ids=[file.removesuffix(".py") for file, *_ in PAGES])
def test_page_renders_without_errors(page: Any, app_url: str, index: int) -> None:
    """Open the page by its URL: it runs to the end, draws its charts and shows no exception or error."""
    file, title, _ = PAGES[index]
    page.goto(f"{app_url}/{url_path(index)}")
    wait_for_run(page)
    assert_no_exception(page)
    count = wait_for_charts(page)
    assert count >= expected_charts(file), f"{title}: {count} charts, expected {expected_charts(file)}"
    if len(PAGES) > 1:  # Streamlit shows no navigation for a single page
        links = page.locator('[data-testid="stSidebarNav"] a')
        assert links.count() == len(PAGES)
    if file == "models.py" and demo_checkpoints():
        page.locator('[data-testid="stDataFrame"] canvas').first.wait_for()
    full_screenshot(page, file.removesuffix(".py"))
    assert_no_exception(page)
    errors = page.locator(ERROR_BOX)
    assert errors.count() == 0, "unexpected st.error:\n" + "\n".join(errors.all_inner_texts())


def test_navigation_reaches_every_page(page: Any, app_url: str) -> None:
    """From the landing page, each page is reachable through the sidebar navigation."""
    assert len(PAGES) >= 2, "navigation is only shown with two or more pages"
    page.goto(app_url)
    wait_for_run(page)
    for file, title, _ in PAGES[1:]:
        page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
        page.wait_for_url(f"**/{file.removesuffix('.py')}")
        wait_for_run(page)
        assert_no_exception(page)


def test_corrupt_checkpoint_upload_shows_an_error(page: Any, app_url: str, tmp_path: Path) -> None:
    """Uploading random bytes as a checkpoint shows an st.error in the sidebar, not a traceback."""
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x02not really a checkpoint" * 50)
    page.goto(app_url)
    wait_for_run(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Add a checkpoint").click()
    uploader = sidebar.locator('[data-testid="stFileUploader"]', has_text="Upload a checkpoint")
    uploader.locator('input[type="file"]').set_input_files(str(broken))
    error = sidebar.locator(ERROR_BOX)
    error.first.wait_for(timeout=RUN_TIMEOUT_MS)
    assert "broken.pt" in error.first.inner_text()
    wait_for_run(page)
    assert_no_exception(page)
    full_screenshot(page, "models-corrupt-checkpoint")


def test_temporal_run_then_report_of_the_session(page: Any, app_url: str) -> None:
    """Run the temporal test in the browser (results drawn), then build its report on the Reports page:
    the preview draws every figure of the report."""
    page.goto(f"{app_url}/temporal")
    wait_for_run(page)
    draws = page.get_by_role("spinbutton", name="Random draws per perturbation")
    draws.fill("1")  # one draw per random perturbation keeps the browser run short
    draws.press("Enter")
    wait_for_run(page)
    page.get_by_role("button", name="Run the test").click()
    page.get_by_text("Accuracy under each perturbation").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    assert wait_for_charts(page) >= 3  # accuracy bars, sweep, class heatmap, reverse confusion
    full_screenshot(page, "temporal-results")
    assert page.locator(ERROR_BOX).count() == 0

    page.locator('[data-testid="stSidebarNav"] a', has_text="Reports").click()
    page.wait_for_url("**/reports")
    wait_for_run(page)
    assert page.get_by_text("This session's temporal test").count() == 1
    assert build_report_preview(page) >= 3
    full_screenshot(page, "reports")
    assert page.locator(ERROR_BOX).count() == 0
