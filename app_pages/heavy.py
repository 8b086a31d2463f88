"""Heavy work in the app: one server-wide queue, results kept for every session, waiting shown.

Every session's heavy analysis (a gate report, an attribution map, a temporal test) takes a turn in one
`WorkQueue` for the whole server (a memory budget and a number of slots), so several sessions never run
more than the server can hold; while it waits the session sees its place and an estimate. Results are
kept in one store keyed by everything that decides them, so a second session asking the same thing gets
it without queueing. A session that closes or reruns while waiting leaves the queue (Streamlit stops
its script at the next display call, and the queue frees the turn in `finally`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from workbench.models.memory import GROWTH_BYTES, measure_footprint, parse_size, resident_bytes
from workbench.models.pass_time import about, pass_time
from workbench.work_queue import WorkQueue

T = TypeVar("T")
BUDGET_VAR = "WORKBENCH_SERVER_MEMORY"  # the server's peak memory, bar the models it loads, e.g. "8GiB"
SLOTS_VAR = "WORKBENCH_SLOTS"  # heavy jobs at once (default 1: the cores are shared anyway)
DEFAULT_BUDGET = "4GiB"


@st.cache_resource(show_spinner=False)
def server_queue() -> WorkQueue:
    """The one queue of this server (its budget and slots from the environment). The budget bounds the
    whole server but for the models it loads: its heavy work gets what is left after what the server
    holds when the queue is made (Python, torch, Streamlit: ~0.5 GiB) and room for what grows besides
    the jobs (decoded clips, figures, the allocator's slack)."""
    budget = parse_size(os.environ.get(BUDGET_VAR) or DEFAULT_BUDGET)
    # never below a quarter of it: a budget set under the process's own size still runs small jobs
    for_jobs = max(budget - resident_bytes() - GROWTH_BYTES, budget // 4)
    return WorkQueue(for_jobs, max(1, int(os.environ.get(SLOTS_VAR) or 1)))


class ResultStore:
    """Results by key for every session, the least recently used dropped beyond `size`."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """The results every session shares."""
    return ResultStore()


def session_id() -> str:
    """This session's runtime id ("local" outside a server, e.g. in AppTest): its name in the queue and
    of its upload folder, so a closed session's waiting work and uploads go with it (app_pages.sessions)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else "local"


def run_heavy(key: Hashable, label: str, cost: int, estimate: float, compute: Callable[[], T]) -> T:
    """`compute()` in its turn of the server's queue, its result kept under `key`; the session sees its
    place and an estimate while it waits."""
    found = result_store().get(key)
    if found is not None:
        return found
    note = st.empty()

    def waiting(ahead: int, seconds: float) -> None:
        note.info(f"Waiting for the server: {ahead} job(s) of other sessions ahead of {label}, "
                  f"about {seconds:.0f} s", icon=":material/hourglass_top:")

    with server_queue().turn(session_id(), cost, estimate, waiting, label=label):
        note.empty()
        value = compute()
    result_store().put(key, value)
    return value


def stop_button(key: str, what: str) -> None:
    """A Stop button for the long work drawn below it. Clicking reruns the page; Streamlit stops the
    running script at its next display call (the work's progress bar), `run_heavy` frees its turn and
    keeps nothing, and this rerun says so instead of starting the work again."""
    if st.button("Stop", key=key, icon=":material/stop_circle:", help=f"stop {what}; nothing of it is kept"):
        st.warning(f"Stopped {what}: its partial results were not kept. Change a setting or run it again "
                   "to start over.", icon=":material/stop_circle:")
        st.stop()


def estimate_note(model_passes: list[tuple[Any, int, int]], what: str) -> None:
    """Say up front how long `what` takes: per model, (model, plain forwards, forward + backward passes),
    priced by one pass of that model timed once on this machine."""
    def turn(model: Any) -> Any:  # the one timing of a model is a backward at its size: heavy work
        cost = measure_footprint(model).job_bytes(True, 1)
        return server_queue().turn(session_id(), cost, 2.0, label="timing one pass")

    seconds = sum(pass_time(model, partial(turn, model)).seconds(forwards, backwards)
                  for model, forwards, backwards in model_passes)
    st.caption(f"Estimated time for {what}: {about(seconds)} on this machine (one pass of each model "
               "timed once, times the passes it needs).")
