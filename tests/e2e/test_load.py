"""A bounded load test of the app served to a lab, in a real browser.

Four sessions open at the same moment: two on Gates & Shifts (demo GSM and GSF), two on Attribution (the
demo GSM, and a ResNet-18 GSM at 8x224 added by a ?checkpoint= link). The server runs heavy work in a
queue with a small memory budget and one slot, so three sessions wait. Each session must see exactly the
figures a fresh server draws for it alone; waiting sessions must be told their place; no exception box;
and the server's peak RSS must stay within the budget plus the models' own size.

The per-session timings are printed (`pytest -s`) for the issue's note.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from workbench import access, build_model, save_model
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.probe import class_names

from .conftest import REPO, free_port, wait_healthy
from .test_browser import EXCEPTION, wait_for_charts, wait_for_run
from .test_sessions import FIGURES_JS, numbers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUDGET = 2 << 30  # the server's 2 GiB, bar the models
WAITING = "Waiting for the server"


def sessions(data: Path) -> dict[str, str]:
    """name -> the link each session opens."""
    big = data / "gsm224.pt"
    return {
        "gates-gsm": "gates?clip=rotate_ccw_00000&models=gsm",
        "gates-gsf": "gates?clip=move_left_00001&models=gsf",
        "attribution-gsm": "attribution?clip=grow_00000&models=gsm&methods=saliency",
        "attribution-224": f"attribution?clip=move_right_00000&checkpoint={big}&models=gsm224"
                           "&methods=saliency",
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root: the probe clips and a seeded ResNet-18 GSM at 8x224 with the probe's classes."""
    root = tmp_path_factory.mktemp("load") / "data"
    shutil.copytree(demo_probe_dir(), root / "probe")
    torch.manual_seed(0)
    model = build_model("gsm", backbone="resnet18", num_classes=len(class_names()), frames=8, input_size=224,
                        class_names=class_names())
    save_model(model, root / "gsm224.pt")
    return root


def rss_kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (VmRSS: now, VmHWM: its peak), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


@contextmanager
def server(data: Path, log: Path) -> Iterator[dict[str, Any]]:
    """A fresh served app (nothing cached) with the data root, the budget and one slot."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", access.MODE_VAR: "served",
           access.ROOTS_VAR: str(data), access.UPLOADS_VAR: str(log.parent / "uploads"),
           "WORKBENCH_SERVER_MEMORY": str(BUDGET), "WORKBENCH_SLOTS": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield {"url": url, "pid": process.pid}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def figures(page: Any) -> dict[str, list[np.ndarray]]:
    """Every drawn figure of a page, by its meta name: the numbers of each trace."""
    return {f["name"]: [numbers(t) for t in f["data"]] for f in page.evaluate(FIGURES_JS) if f["name"]}


def finish(page: Any) -> dict[str, list[np.ndarray]]:
    wait_for_run(page)
    wait_for_charts(page)
    if page.locator(EXCEPTION).count():
        pytest.fail("Streamlit exception on the page:\n"
                    + "\n".join(page.locator(EXCEPTION).all_inner_texts()))
    return figures(page)


def warm(browser: Any, url: str) -> None:
    """Open the home page once so the server has imported everything (its idle size is then measured)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    wait_for_run(page)
    context.close()


def test_four_sessions_at_once_stay_within_the_budget_and_get_their_own_figures(
    browser: Any, data: Path, tmp_path: Path
) -> None:
    links = sessions(data)
    alone: dict[str, dict[str, list[np.ndarray]]] = {}
    solo_seconds: dict[str, float] = {}
    with server(data, tmp_path / "solo.log") as solo:  # each session alone, one after the other
        for name, link in links.items():
            context = browser.new_context(viewport={"width": 1500, "height": 1000})
            page = context.new_page()
            started = time.monotonic()
            page.goto(f"{solo['url']}/{link}")
            alone[name] = finish(page)
            solo_seconds[name] = time.monotonic() - started
            context.close()
            assert alone[name], f"{name}: no figure drawn"

    with server(data, tmp_path / "load.log") as served:
        warm(browser, served["url"])
        idle = rss_kib(served["pid"], "VmRSS") * 1024
        contexts = {name: browser.new_context(viewport={"width": 1500, "height": 1000}) for name in links}
        try:
            pages = {name: context.new_page() for name, context in contexts.items()}
            started = time.monotonic()
            for name, page in pages.items():  # every request goes out before any finishes
                page.goto(f"{served['url']}/{links[name]}", wait_until="commit")
            told: dict[str, str] = {}
            done: dict[str, float] = {}
            deadline = started + 900
            while len(done) < len(pages) and time.monotonic() < deadline:
                for name, page in pages.items():
                    if name in done:
                        continue
                    note = page.get_by_text(WAITING)
                    if name not in told and note.count():
                        told[name] = note.first.inner_text()
                    if page.evaluate(SETTLED_WITH_CHARTS):
                        done[name] = time.monotonic() - started
                time.sleep(0.2)
            shown = {name: finish(page) for name, page in pages.items()}
            peak = rss_kib(served["pid"], "VmHWM") * 1024
        finally:
            for context in contexts.values():
                context.close()

    demo = demo_checkpoints()
    models = os.path.getsize(data / "gsm224.pt") + sum(os.path.getsize(demo[s]) for s in ("gsm", "gsf"))
    mib = 2**20
    print(f"\nidle RSS {idle / mib:.0f} MiB, peak RSS {peak / mib:.0f} MiB, budget {BUDGET / mib:.0f} MiB, "
          f"models {models / mib:.0f} MiB")
    for name in links:
        print(f"{name}: alone {solo_seconds[name]:.1f} s, among four {done.get(name, float('nan')):.1f} s"
              + (f", told: {told[name]!r}" if name in told else ""))
    assert set(done) == set(links), f"not finished in time: {set(links) - set(done)}"
    assert told, "no session was told its place in the queue"
    assert all(re.search(r"\d+ job\(s\) of other sessions ahead", text) for text in told.values()), told
    assert peak <= BUDGET + models, (peak, idle)
    for name in links:
        assert set(shown[name]) == set(alone[name]), name
        for figure, traces in alone[name].items():
            got = shown[name][figure]
            assert len(got) == len(traces), (name, figure)
            for a, b in zip(got, traces):
                same = a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
                assert same, (name, figure)


# the run has finished and at least one chart has drawn
SETTLED_WITH_CHARTS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.dataset.testScriptState === "notRunning"
        && document.querySelectorAll('.js-plotly-plot .main-svg').length > 0;
}"""
