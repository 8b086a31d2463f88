"""CLI `gates`: export GSM/GSF gate statistics, routing, gate-motion alignment and interventions."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import UserError
from .device import add_device_args
from .model_options import add_model_option_args, model_overrides

if TYPE_CHECKING:
    import pandas as pd

    from analysis.gates import GateReport


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `gates` subcommand."""
    p = sub.add_parser("gates", help="inside GSM/GSF: gates, routing, alignment and interventions on a video")
    p.add_argument("checkpoint", type=Path, help="a gsm or gsf checkpoint")
    p.add_argument("video", type=Path, help="video file or frame folder")
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    p.add_argument("--mask", type=Path, help="object mask .npz (key 'mask', bool T,H,W); default: the "
                                             "probe mask next to a probe clip, if there is one")
    p.add_argument("--layer", help="layer for the per-layer figures (default: the first gated layer)")
    p.add_argument("--data", type=Path,
                   help="labelled dataset: also measure accuracy under each intervention")
    p.add_argument("--max-clips", type=int, default=None, help="clips of --data to use (default: all)")
    p.add_argument("--png", action="store_true", help="also write PNG figures (kaleido + chromium)")
    add_model_option_args(p)
    add_device_args(p, amp=False)  # gate statistics are kept in full precision
    p.set_defaults(handler=gates)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_fingerprint(path: Path) -> str:
    """sha256 over the dataset's label list and file sizes: changes when the data does."""
    from .datasets import open_dataset

    dataset = open_dataset(path)
    lines = [f"{Path(i.path).name},{i.label},{Path(i.path).stat().st_size}" for i in dataset.items]
    return _sha256_text("\n".join(lines))


def provenance(args: argparse.Namespace, model_sha: str, mask_source: str | None) -> dict:
    """run.json contents: command, versions, seeds, checkpoint and data identity, date."""
    import captum
    import decord
    import torch

    from . import __version__
    from .models import file_sha256

    video = args.video
    return {
        "command": " ".join(["python -m workbench", *(sys.argv[1:] or ["gates", str(args.checkpoint)])]),
        "analysis": "gates",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "captum": captum.__version__,
                     "decord": decord.__version__, "workbench": __version__},
        "seeds": {"note": "deterministic: test-time segment sampling, no randomness"},
        "checkpoint": {"path": str(args.checkpoint), "sha256": model_sha},
        "video": {"path": str(video), "sha256": file_sha256(video) if video.is_file() else None},
        "mask": mask_source,
        "dataset": ({"path": str(args.data), "fingerprint": dataset_fingerprint(args.data),
                     "max_clips": args.max_clips} if args.data else None),
        "layer": args.layer,
    }


def _load_mask(args: argparse.Namespace):
    import numpy as np

    from analysis.gates import probe_mask

    if args.mask is not None:
        try:
            with np.load(args.mask, allow_pickle=False) as archive:
                return archive["mask"].astype(bool), str(args.mask)
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"cannot read mask {str(args.mask)!r}: {err}") from None
    mask = probe_mask(args.video)
    return (mask, "probe mask next to the clip") if mask is not None else (None, None)


def write_figures(figures: dict, out: Path, png: bool) -> list[str]:
    """HTML per figure sharing one plotly.js file next to them; PNG too when asked. Returns names."""
    from plotly.offline import get_plotlyjs

    (out / "plotly.min.js").write_text(get_plotlyjs())
    if png:
        import kaleido

        kaleido.start_sync_server()  # once: ~0.3 s per image instead of ~3 s (FIELD_NOTES)
    (out / "figures").mkdir(exist_ok=True)
    for name, figure in figures.items():
        figure.write_html(out / f"{name}.html", include_plotlyjs="plotly.min.js", auto_play=False)
        # the figure itself, for `report`: some are drawn from arrays that no table keeps
        (out / "figures" / f"{name}.json").write_text(figure.to_json())
        if png:
            with warnings.catch_warnings():  # kaleido warns that its server ignores per-call options
                warnings.simplefilter("ignore")
                figure.write_image(out / f"{name}.png", width=1100, height=figure.layout.height or 450)
    return list(figures)


def summary_table(report: GateReport) -> pd.DataFrame:
    """One row per layer: gates, learned vs TSM routing, alignment, the all-zero-gate intervention."""
    stats = report.statistics.groupby("layer", sort=False).agg(
        mean_gate=("mean", "mean"), mean_abs_gate=("abs_mean", "mean"),
        positive_share=("positive_share", "mean"), saturated_share=("saturated_share", "mean"))
    kind = next(k for k in report.routing if k != "tsm")
    moved = {name: r.groupby("layer", sort=False)["moved_share"].mean() for name, r in report.routing.items()}
    stats[f"moved_share_{kind}"] = moved[kind]
    stats["moved_share_tsm"] = moved["tsm"]
    align = report.alignment.set_index("layer").drop(columns=["layer_index"])
    table = stats.join(align)
    zero = report.interventions[report.interventions["mode"] == "zero"].set_index("target")
    table["zero_gate_probability_change"] = zero["probability_change"].reindex(table.index)
    return table.reset_index()


def gates(args: argparse.Namespace) -> int:
    """Write tables, figures and run.json for one checkpoint and video."""
    import pandas as pd

    from analysis.gates import gate_report, gated_ops, intervention_accuracy
    from analysis.gates_figures import intervention_figure, report_figures

    from .device import prepare_model, resolve_device
    from .models import load_model
    from .models.checkpoint import file_sha256

    device = resolve_device(args.device)
    model = load_model(args.checkpoint, **model_overrides(args))
    model = prepare_model(model, device)
    try:
        layers = [name for name, _ in gated_ops(model)]
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.layer and args.layer not in layers:
        raise UserError(f"no gated layer {args.layer!r}; choose from {', '.join(layers)}")
    mask, mask_source = _load_mask(args)
    report = gate_report(model, args.video, mask)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    routing = pd.concat(report.routing.values(), ignore_index=True)
    tables = {"gate_stats": report.statistics, "gate_histogram": report.histogram, "routing": routing,
              "alignment": report.alignment, "interventions": report.interventions}
    figures = report_figures(report, args.layer)
    if args.data:
        accuracy = intervention_accuracy(model, args.data, max_clips=args.max_clips)
        tables["intervention_accuracy"] = accuracy
        figures["intervention_accuracy"] = intervention_figure(accuracy, "accuracy_change")
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        table.to_parquet(out / f"{name}.parquet", index=False)
    report.statistics.to_parquet(out / "results.parquet", index=False)  # one row per layer, group, frame
    summary = summary_table(report)
    summary.to_csv(out / "summary.csv", index=False)
    written = write_figures(figures, out, args.png)
    run = provenance(args, file_sha256(args.checkpoint), mask_source)
    run["tables"] = sorted(tables)
    run["figures"] = written
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")

    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(tables)} tables and {len(written)} figures to {out}")
    return 0
