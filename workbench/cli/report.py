"""`report`: one self-contained HTML comparison report (and a zip bundle) from analysis run directories."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import UserError
from .progress import progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = sub.add_parser("report", help="HTML report (+ zip of figures and tables) from run directories",
                       description="Build a self-contained HTML report from temporal-test, gates and "
                                   "attribute run directories; --zip adds a bundle with PNG/SVG figures, "
                                   "CSV/Parquet tables, maps (npz) and provenance.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run directories, in report order")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--zip", action="store_true", help="also write <out>.zip with figures, tables and maps")
    p.add_argument("--formats", nargs="+", default=["png", "svg"], metavar="FMT",
                   help="static figure formats in the zip: png svg pdf (default: png svg)")
    p.add_argument("--pdf", action="store_true", help="also print the whole report to <out>.pdf (chromium)")
    p.add_argument("--title", default="Gate-Shift Workbench report")
    p.add_argument("--notes", default="", help="free text shown under the title")
    p.set_defaults(handler=report)


def report(args: argparse.Namespace) -> int:
    """Build and write the report; print what was written and how long it took."""
    from analysis.report import bundle_files, html_to_pdf, static_figures, write_html, write_zip
    from analysis.report_sections import build_report, figure_names

    started = time.perf_counter()
    if args.out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{args.out}: the report is HTML; give a .html file name")
    built = build_report(args.runs, title=args.title, notes=args.notes)
    html_path = write_html(built, args.out)
    written = [html_path]
    if args.zip:
        with progress_bar("figures", "figures") as update:
            static = static_figures(built, args.formats, progress=update)
        written.append(write_zip(bundle_files(built, static), args.out.with_suffix(".zip")))
    if args.pdf:
        written.append(html_to_pdf(html_path, args.out.with_suffix(".pdf")))
    seconds = time.perf_counter() - started
    print(f"{len(built.sections)} sections, {len(figure_names(built))} figures, {len(built.models)} models "
          f"in {seconds:.1f} s")
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
