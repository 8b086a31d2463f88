"""The app served to a lab, in a real browser: bounded work across sessions, uploads removed with their
session, no exception box, no server path in any message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench import access
from workbench.demo import demo_probe_dir

from .conftest import REPO, free_port, wait_healthy
from .test_browser import ERROR_BOX, EXCEPTION, wait_for_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app served on all interfaces with data roots, a 3 GiB work budget, one heavy job at a time,
    uploads in a folder of its own and sessions dropped 2 s after their tab closes."""
    base = tmp_path_factory.mktemp("served")
    data, uploads = base / "data", base / "uploads"
    shutil.copytree(demo_probe_dir(), data / "probe")
    port = free_port()
    log = base / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", access.MODE_VAR: "served",
           access.ROOTS_VAR: str(data), access.UPLOADS_VAR: str(uploads),
           "WORKBENCH_SERVER_MEMORY": "3GiB", "WORKBENCH_SLOTS": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--server.disconnectedSessionTTL", "2", "--browser.gatherUsageStats", "false"]
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        yield {"url": url, "data": data, "uploads": uploads, "pid": server.pid, "log": log}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def session_folders(uploads: Path) -> list[Path]:
    root = uploads / "gate-shift-workbench-uploads"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def test_an_upload_is_removed_when_its_session_ends(browser: Any, served: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.goto(served["url"])
    wait_for_run(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("radiogroup").get_by_text("Upload", exact=True).click()
    wait_for_run(page)
    uploader = sidebar.locator('[data-testid="stFileUploader"]', has_text="Upload a video")
    uploader.locator('input[type="file"]').set_input_files(str(demo_probe_dir() / "grow" / "grow_00000.mp4"))
    sidebar.get_by_text("frames,").first.wait_for(timeout=60_000)  # the clip's caption: it was read
    assert page.locator(EXCEPTION).count() == 0 and page.locator(ERROR_BOX).count() == 0
    folders = session_folders(served["uploads"])
    assert len(folders) == 1 and any(f.name.endswith("grow_00000.mp4") for f in folders[0].iterdir())
    context.close()  # the tab closes; the server drops the session after its TTL (2 s here)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and folders[0].exists():
        time.sleep(0.5)
    assert not folders[0].exists(), "the closed session's uploads are still on the server"
