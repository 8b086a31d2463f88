"""Analyses over any model (results as plain data) and the plotly figures drawn from them."""
