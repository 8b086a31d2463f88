"""The app's pages (one file per page) and the Streamlit glue they share (sidebar, caches).

Streamlit treats a `pages/` folder next to the main script as its legacy multipage app whenever
a run starts before `st.navigation` is called (every AppTest rerun, a fresh server's first visit
to a page URL): the page then runs alone, without app.py. So every page starts with
`page_shell()`, which renders the shared sidebar when app.py has not done it in this run.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SHELL = threading.local()  # one Streamlit script run per thread


@contextmanager
def shell_rendered() -> Iterator[None]:
    """app.py: mark this run as one whose sidebar app.py renders."""
    _SHELL.on = True
    try:
        yield
    finally:
        _SHELL.on = False


def page_shell() -> None:
    """Render the shared sidebar unless app.py already did in this run."""
    if not getattr(_SHELL, "on", False):
        from . import sidebar

        sidebar.render()

# One line per page: (file in pages/, title, icon); the first is the landing page. Plain
# data, so the browser tests can list the pages without importing streamlit.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("models.py", "Models", ":material/view_module:"),
    ("temporal.py", "Temporal reasoning", ":material/swap_horiz:"),
    ("gates.py", "Gates & Shifts", ":material/tune:"),
    ("attribution.py", "Attribution", ":material/center_focus_strong:"),
)


def url_path(index: int) -> str:
    """The URL path Streamlit gives page `index`: its file stem, the landing page the root."""
    return "" if index == 0 else PAGES[index][0].removesuffix(".py")
