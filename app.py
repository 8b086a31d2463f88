"""Gate-Shift Workbench app: `streamlit run app.py` (pages in app_pages/, shared sidebar)."""

import streamlit as st

from app_pages import PAGES, shared, sidebar
from workbench.video import using_decoder

st.set_page_config(page_title="Gate-Shift Workbench", page_icon=":material/animation:", layout="wide")
shared.admit_or_stop()  # served: data roots set and (when configured) the user logged in

page = st.navigation([
    st.Page(f"app_pages/{file}", title=title, icon=icon, default=i == 0)
    for i, (file, title, icon) in enumerate(PAGES)
])
with using_decoder(sidebar.chosen_decoder()):  # this session's decoder, not the other sessions'
    sidebar.render()
    page.run()
