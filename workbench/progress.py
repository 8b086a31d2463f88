"""The progress callback every long analysis takes: `progress(done, total)` after each unit of work.

Front ends draw it (the CLI a bar with an ETA on stderr, the app a progress bar). A front end may stop a
run from inside its callback by raising (the app's Stop button makes Streamlit raise at the next display
call): an analysis keeps nothing it did not finish, so a stopped run leaves no result behind.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (done, total)
