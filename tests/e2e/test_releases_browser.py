"""The real app in chromium with a torchvision release: typed options and a path add the seeded mc3_18
file, the sidebar says what it is, and the Models page costs it without an exception or an error box."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.release_files import write_release

from .test_browser import ERROR_BOX, RUN_TIMEOUT_MS, assert_no_exception, full_screenshot, wait_for_run

pytestmark = pytest.mark.e2e


def test_a_torchvision_release_is_added_by_path_and_costed(page: Any, app_url: str, tmp_path: Path) -> None:
    path = write_release("tv_mc3_18_k400", tmp_path)
    page.goto(app_url)
    wait_for_run(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Add a checkpoint").click()
    options = sidebar.get_by_role("textbox", name="Options for released checkpoints (before adding)")
    options.fill("frames=4 input_size=64")  # keeps the page's latency and predictions cheap
    options.press("Enter")
    wait_for_run(page)
    typed = sidebar.get_by_role("textbox", name="or a checkpoint path on this machine")
    typed.fill(str(path))
    typed.press("Enter")
    about = sidebar.get_by_text("About mc3_18-a90a0ba3 (mc3)")
    about.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    about.click()
    description = sidebar.locator('[data-testid="stText"]', has_text="layout: torchvision-mc3_18")
    description.wait_for(timeout=RUN_TIMEOUT_MS)
    text = description.inner_text()
    assert "scheme: mc3 (Mixed 3D/2D) on backbone resnet18" in text and "parameters: 11,695,440" in text
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    full_screenshot(page, "models-torchvision-release")
    errors = page.locator(ERROR_BOX)
    assert errors.count() == 0, "unexpected st.error:\n" + "\n".join(errors.all_inner_texts())
