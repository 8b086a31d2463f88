"""Gate-Shift Workbench app: `streamlit run app.py` (pages in app_pages/, shared sidebar)."""

import streamlit as st

from app_pages import PAGES, shared, sidebar
from workbench.access import ROOTS_VAR, set_policy
from workbench.video import using_decoder

st.set_page_config(page_title="Gate-Shift Workbench", page_icon=":material/animation:", layout="wide")

policy = shared.server_policy()
if policy is None:  # served beyond this machine, but nothing says which folders users may read
    st.error(f"This workbench is served to other machines (server.address = "
             f"{st.get_option('server.address') or 'every interface'!s}) and has no data roots: set "
             f"{ROOTS_VAR} (folders joined by ':') or [workbench] data_roots in .streamlit/secrets.toml, "
             "or serve it on 127.0.0.1 only. See the README, 'Serving the app to a lab'.")
    st.stop()
set_policy(policy)

page = st.navigation([
    st.Page(f"app_pages/{file}", title=title, icon=icon, default=i == 0)
    for i, (file, title, icon) in enumerate(PAGES)
])
with using_decoder(sidebar.chosen_decoder()):  # this session's decoder, not the other sessions'
    sidebar.render()
    page.run()
