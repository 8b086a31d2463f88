"""The app's pages (one file per page) and the Streamlit glue they share (sidebar, caches).

Not named `pages/`: next to the main script that name switches Streamlit's legacy multipage
mode back on whenever a run starts before `st.navigation` is called (every AppTest rerun, a
fresh server's first visit to a page URL), and then a page runs without app.py's sidebar.
"""

# One line per page: (file in app_pages/, title, icon); the first is the landing page. Plain
# data, so the browser tests can list the pages without importing streamlit.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("models.py", "Models", ":material/view_module:"),
    ("temporal.py", "Temporal reasoning", ":material/swap_horiz:"),
    ("gates.py", "Gates & Shifts", ":material/tune:"),
    ("attribution.py", "Attribution", ":material/center_focus_strong:"),
    ("probes.py", "Probes", ":material/biotech:"),
    ("reports.py", "Reports", ":material/summarize:"),
)


def url_path(index: int) -> str:
    """The URL path Streamlit gives page `index`: its file stem, the landing page the root."""
    return "" if index == 0 else PAGES[index][0].removesuffix(".py")
