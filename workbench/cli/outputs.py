"""What the analysis commands write besides run.json: tables, figures and arrays of a run directory."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

FIGURES_DIR = "figures"


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, parquet: bool = True) -> list[str]:
    """Each table as `<name>.csv` (and `<name>.parquet`); returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        if parquet:
            table.to_parquet(folder / f"{name}.parquet", index=False)
    return list(tables)


def write_figures(figures: Mapping[str, go.Figure], folder: Path, png: bool = False) -> list[str]:
    """Each figure as `figures/<name>.html` (sharing one plotly.min.js there) and `figures/<name>.json`
    (the figure itself, for `report`: some are drawn from arrays no table keeps); PNG too when asked."""
    from plotly.offline import get_plotlyjs

    out = folder / FIGURES_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "plotly.min.js").write_text(get_plotlyjs())  # once per folder, not ~4.8 MB inlined per figure
    if png:
        import kaleido

        kaleido.start_sync_server()  # once: ~0.3 s per image instead of ~3 s (FIELD_NOTES)
    for name, figure in figures.items():
        figure.write_html(out / f"{name}.html", include_plotlyjs="plotly.min.js", auto_play=False)
        (out / f"{name}.json").write_text(figure.to_json())
        if png:
            with warnings.catch_warnings():  # kaleido warns that its server ignores per-call options
                warnings.simplefilter("ignore")
                figure.write_image(out / f"{name}.png", width=1100, height=figure.layout.height or 450)
    return list(figures)


def write_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> str:
    """Arrays by name in one compressed npz; returns its file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path.name
