"""Which app sessions are alive: each has an upload folder and a name in the work queue, and a janitor
removes a closed session's uploads and drops its waiting work.

Streamlit closes a session some time after its browser tab goes (`server.disconnectedSessionTTL`);
the janitor, one thread per server, asks the runtime every few seconds which of the sessions it gave a
folder to are still active. Only those: another server (or a test run) sharing the upload root keeps
its sessions' folders.
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
    name = session_id()
    folder = upload_dir(name)
    with _LOCK:
        _OURS[folder.name] = name
    return folder


_OURS: dict[str, str] = {}  # upload folders this server process created: folder name -> session id
_LOCK = threading.Lock()


def _alive(name: str) -> bool:
    if not runtime.exists():
        return True
    return bool(runtime.get_instance().is_active_session(name))


def sweep() -> list[str]:
    """Remove the upload folders of this server's closed sessions and drop their waiting work; returns
    their ids."""
    root = upload_root()
    with _LOCK:
        gone = {folder: name for folder, name in sorted(_OURS.items()) if not _alive(name)}
        for folder in gone:
            del _OURS[folder]
    for folder, name in gone.items():
        remove_uploads(root / folder)
        server_queue().release_owner(name)
    return list(gone.values())


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
