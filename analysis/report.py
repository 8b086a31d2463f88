"""Comparison reports: one self-contained HTML file, static figures and a data bundle.

A report is a list of sections (one per analysis run: temporal tests, gates & shifts,
attribution), each holding the same plotly figures and tables the app shows, plus the model
table and provenance. `render_html` inlines plotly.js once and every figure as JSON data, so the
file opens offline; every string that came from a user (file, class and model names, notes,
commands) is HTML-escaped, and figure JSON is escaped so it cannot close its <script> element.
Everything but the creation date is a pure function of the inputs, so two reports built from
the same runs are byte-identical apart from that date.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from workbench.errors import ReportError

TABLE_ROWS_SHOWN = 60  # the HTML shows the head of long tables; the bundle has every row
STATIC_FORMATS = ("png", "svg")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: bundles of the same runs are identical
# true once plotly.js has drawn every figure of a report (used by the PDF export and the tests)
RENDERED_JS = "Array.from(document.querySelectorAll('.figure')).every(d => d.querySelector('.main-svg'))"


@dataclass
class ReportFigure:
    """One plotly figure of a section, under a file-friendly name."""

    name: str
    title: str
    figure: go.Figure
    caption: str = ""


@dataclass
class ReportTable:
    """One table of a section, under a file-friendly name."""

    name: str
    title: str
    frame: pd.DataFrame
    caption: str = ""
    shown: bool = True  # False: only in the data bundle (e.g. the per-observation table)


@dataclass
class Section:
    """One analysis run in a report."""

    key: str  # anchor and folder name, unique within a report
    title: str
    kind: str  # the run kind: "temporal-test" | "gates" | "attribute"
    source: str  # the run directory, or "this app session"
    figures: list[ReportFigure] = field(default_factory=list)
    tables: list[ReportTable] = field(default_factory=list)
    arrays: dict[str, bytes] = field(default_factory=dict)  # npz files (name -> bytes) for the bundle
    provenance: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # {label, path, sha256}
    text: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Everything a report shows; `created` is the only field that differs between rebuilds."""

    title: str
    sections: list[Section]
    models: pd.DataFrame
    provenance: dict[str, Any]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: str = ""


# ---------------------------------------------------------------------------------------------
# Figures: compact, deterministic, safe to embed


def compact_images(fig: go.Figure) -> go.Figure:
    """A copy whose image traces carry PNG data URIs instead of pixel arrays (~10x smaller) and whose
    traces have fixed uids (static exports then repeat byte for byte)."""
    from PIL import Image

    fig = go.Figure(fig)

    def as_source(z: Any) -> str:
        if isinstance(z, dict) and "bdata" in z:  # a figure read back from JSON: a typed array
            shape = [int(n) for n in str(z.get("shape", "")).split(",") if n.strip()]
            z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape or -1)
        pixels = np.asarray(z, dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    def convert(traces: Iterable[Any]) -> None:
        for trace in traces:
            if trace.type == "image" and trace.z is not None:
                trace.source = as_source(trace.z)
                trace.z = None

    convert(fig.data)
    for frame in fig.frames or ():
        convert(frame.data)
    for number, trace in enumerate(fig.data):
        if trace.uid is None:  # plotly.js would draw a random one into SVG class names
            trace.uid = f"t{number}"
    return fig


def figure_json(fig: go.Figure) -> str:
    """Plotly JSON of a figure, with <, > and & escaped so it can sit inside a <script> element."""
    text = pio.to_json(fig, validate=False, pretty=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------------------------------------
# HTML


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 24px 60px;color:#1f2328;line-height:1.45}
h1{margin-top:28px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:40px}
nav ol{columns:2}table{border-collapse:collapse;font-size:13px;margin:8px 0 4px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right}th{background:#f6f8fa}
td.text,th.text{text-align:left}td.text{max-width:420px;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto}.caption,.meta{color:#57606a;font-size:13px}
.figure{width:100%;min-height:120px}pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px}
.notes{white-space:pre-wrap;border-left:4px solid #d0d7de;padding-left:12px}
"""

_SCRIPT = """
for (const holder of document.querySelectorAll('script.figure-data')) {
  const spec = JSON.parse(holder.textContent);
  const target = document.getElementById(holder.dataset.target);
  Plotly.newPlot(target, spec.data, spec.layout || {}, {responsive: true, displaylogo: false})
    .then(() => { if (spec.frames) { Plotly.addFrames(target, spec.frames); } });
}
"""


def _e(value: Any) -> str:
    """Escaped text of any value."""
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> tuple[str, bool]:
    """Display text of a table cell and whether it is text (left-aligned)."""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "", False
        return f"{value:.4g}", False
    if isinstance(value, (int, np.integer, bool, np.bool_)):
        return str(value), False
    return str(value), True


_SHA256 = re.compile(r"[0-9a-f]{64}")


def table_html(frame: pd.DataFrame, rows: int = TABLE_ROWS_SHOWN) -> str:
    """An escaped HTML table of the first `rows` rows."""
    head = "".join(f"<th>{_e(column)}</th>" for column in frame.columns)
    body = []
    for record in frame.head(rows).itertuples(index=False):
        cells = []
        for value in record:
            text, is_text = _cell(value)
            if is_text and _SHA256.fullmatch(text):  # a checkpoint hash: short, the full one on hover
                cells.append(f'<td class="text" title="{text}"><code>{text[:12]}</code></td>')
            else:
                cells.append(f'<td class="text">{_e(text)}</td>' if is_text else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="meta">first {rows} of {len(frame)} rows; the zip bundle has them all</p>'
            if len(frame) > rows else "")
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"</table></div>{more}")


def render_html(report: Report, plotly_js: str | None = None) -> str:
    """The whole report as one HTML document (plotly.js inlined once; no network access)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs() if plotly_js is None else plotly_js
    contents = ['<li><a href="#models">Models</a></li>']
    contents += [f'<li><a href="#{_e(s.key)}">{_e(s.title)}</a></li>' for s in report.sections]
    contents.append('<li><a href="#provenance">Provenance</a></li>')
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(report.title)}</title>",
        f'<meta name="created" content="{_e(report.created)}">',
        f"<style>{_STYLE}</style>",
        f"<script>{js}</script>",
        "</head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f'<p class="meta">Gate-Shift Workbench report, created {_e(report.created)}</p>',
    ]
    if report.notes:
        parts.append(f'<div class="notes">{_e(report.notes)}</div>')
    parts.append(f"<nav><h2>Contents</h2><ol>{''.join(contents)}</ol></nav>")
    parts.append('<section id="models"><h2>Models</h2>')
    parts.append(table_html(report.models) if not report.models.empty else "<p>No models recorded.</p>")
    parts.append("</section>")
    counter = 0
    for section in report.sections:
        parts.append(f'<section id="{_e(section.key)}"><h2>{_e(section.title)}</h2>')
        parts.append(f'<p class="meta">from {_e(section.source)}</p>')
        parts += [f"<p>{_e(line)}</p>" for line in section.text]
        for item in section.figures:
            counter += 1
            div = f"figure-{counter}"
            parts.append(f"<h3>{_e(item.title)}</h3>")
            name = f"{section.key}/{item.name}"
            parts.append(f'<div class="figure" id="{div}" data-name="{_e(name)}"></div>')
            parts.append(f'<script type="application/json" class="figure-data" data-target="{div}">'
                         f"{figure_json(compact_images(item.figure))}</script>")
            if item.caption:
                parts.append(f'<p class="caption">{_e(item.caption)}</p>')
        for table in (t for t in section.tables if t.shown):
            parts.append(f"<h3>{_e(table.title)}</h3>")
            parts.append(table_html(table.frame))
            if table.caption:
                parts.append(f'<p class="caption">{_e(table.caption)}</p>')
        parts.append("<details><summary>Provenance of this run</summary>"
                     f"<pre>{_e(json.dumps(section.provenance, indent=2, sort_keys=True, default=str))}</pre>"
                     "</details></section>")
    parts.append('<section id="provenance"><h2>Provenance</h2>')
    parts.append(f"<pre>{_e(json.dumps(report.provenance, indent=2, sort_keys=True, default=str))}</pre>")
    parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def write_html(report: Report, path: str | Path) -> Path:
    """Write the self-contained HTML report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Static figures (kaleido) and PDF (chromium)


_SVG_UID = re.compile(r'id="defs-([0-9a-f]+)"')


def _stable_svg(svg: bytes) -> bytes:
    """plotly.js names clip paths etc. after a random figure id; use a fixed one (same figure, same bytes)."""
    text = svg.decode()
    for uid in sorted(set(_SVG_UID.findall(text))):
        text = text.replace(uid, "f00000")
    return text.encode()


def static_figures(
    report: Report, formats: Sequence[str] = STATIC_FORMATS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, bytes]:
    """Every figure as PNG/SVG/PDF bytes, by bundle path (figures/<section>/<name>.<fmt>).

    kaleido's browser starts once for the whole report (per-call start-up costs ~3 s a figure).
    """
    import warnings

    import kaleido

    unknown = sorted(set(formats) - {"png", "svg", "pdf"})
    if unknown:
        raise ReportError(f"unknown figure format(s) {', '.join(unknown)}; choose png, svg, pdf")
    items = [(s.key, f) for s in report.sections for f in s.figures]
    total = len(items) * len(formats)
    out: dict[str, bytes] = {}
    kaleido.start_sync_server(silence_warnings=True)
    try:
        done = 0
        for key, item in items:
            fig = compact_images(item.figure)
            height = int(fig.layout.height or 450)
            for fmt in formats:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = pio.to_image(fig, format=fmt, width=1100, height=height)
                out[f"figures/{key}/{item.name}.{fmt}"] = _stable_svg(data) if fmt == "svg" else data
                done += 1
                if progress:
                    progress(done, total)
    finally:
        kaleido.stop_sync_server(silence_warnings=True)
    return out


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, chromium: str = "/usr/bin/chromium") -> Path:
    """Print the rendered HTML report (figures drawn) to one PDF with headless chromium."""
    from concurrent.futures import ThreadPoolExecutor

    # Playwright's sync API refuses to run where an asyncio loop runs (Jupyter, other Playwright
    # users in the process); a worker thread has none
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_print_pdf, Path(html_path).resolve(), Path(pdf_path), chromium).result()


def _print_pdf(html_path: Path, pdf_path: Path, chromium: str) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            page.goto(html_path.as_uri())
            page.wait_for_function(RENDERED_JS, timeout=120_000)
            page.pdf(path=str(pdf_path), format="A4", print_background=True)
        finally:
            browser.close()
    return pdf_path


# ---------------------------------------------------------------------------------------------
# Data bundle


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def bundle_files(report: Report, static: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Every file of the zip bundle by path: the HTML, tables (CSV + Parquet), maps, figures."""
    files: dict[str, bytes] = {"report.html": render_html(report).encode()}
    files["tables/models.csv"] = report.models.to_csv(index=False).encode()
    files["tables/models.parquet"] = _parquet_bytes(report.models)
    for section in report.sections:
        for table in section.tables:
            files[f"tables/{section.key}/{table.name}.csv"] = table.frame.to_csv(index=False).encode()
            files[f"tables/{section.key}/{table.name}.parquet"] = _parquet_bytes(table.frame)
        for name, data in section.arrays.items():
            files[f"maps/{section.key}/{name}"] = data
        files[f"provenance/{section.key}.json"] = json.dumps(
            section.provenance, indent=2, sort_keys=True, default=str).encode()
    files["provenance/report.json"] = json.dumps(
        {**report.provenance, "created": report.created}, indent=2, sort_keys=True, default=str).encode()
    files.update(static or {})
    return files


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip of `files` with sorted members and fixed dates (same inputs -> same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def write_zip(files: dict[str, bytes], path: str | Path) -> Path:
    """Write the zip bundle of `files` (see zip_bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files))
    return path


def read_bundle_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """The Parquet tables of a bundle, by path without extension (for checks and notebooks)."""
    tables = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".parquet"):
                tables[name[: -len(".parquet")]] = pd.read_parquet(io.BytesIO(archive.read(name)))
    return tables
