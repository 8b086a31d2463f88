"""Which app sessions are alive: each has an upload folder and a name in the work queue, and a janitor
removes a closed session's uploads and drops its waiting work.

Streamlit closes a session some time after its browser tab goes (`server.disconnectedSessionTTL`);
the janitor, one thread per server, asks the runtime every few seconds which sessions are still active.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import streamlit as st
from streamlit import runtime

from workbench.access import upload_root
from workbench.app_state import remove_uploads, upload_dir

from .heavy import server_queue, session_id

SWEEP_SECONDS = 2.0


def session_uploads() -> Path:
    """The folder this session's uploads go to (removed when the session closes)."""
    _janitor()
    return upload_dir(session_id())


def _alive(name: str) -> bool:
    if not runtime.exists():
        return True
    return bool(runtime.get_instance().is_active_session(name))


def sweep() -> list[str]:
    """Remove the upload folders of closed sessions and drop their waiting work; returns their ids."""
    root = upload_root()
    gone = [p.name for p in root.iterdir() if p.is_dir() and p.name != "shared" and not _alive(p.name)] \
        if root.is_dir() else []
    for name in gone:
        remove_uploads(root / name)
        server_queue().release_owner(name)
    return gone


@st.cache_resource(show_spinner=False)
def _janitor() -> threading.Thread:
    """The one sweeping thread of this server (started on first use)."""
    def loop() -> None:
        while True:
            time.sleep(SWEEP_SECONDS)
            try:
                sweep()
            except OSError:  # a folder removed meanwhile: the next sweep sees the rest
                continue

    thread = threading.Thread(target=loop, name="workbench-session-janitor", daemon=True)
    thread.start()
    return thread
