"""Gate-Shift Workbench app: `streamlit run app.py` (pages in pages/, shared sidebar)."""

import streamlit as st

from pages import PAGES, shell_rendered, sidebar

st.set_page_config(page_title="Gate-Shift Workbench", page_icon=":material/animation:", layout="wide")

page = st.navigation([
    st.Page(f"pages/{file}", title=title, icon=icon, default=i == 0)
    for i, (file, title, icon) in enumerate(PAGES)
])
with shell_rendered():
    sidebar.render()
    page.run()
