"""CLI `gates`: export GSM/GSF gate statistics, routing, gate-motion alignment, interventions and the
raw gate tensors of one video (parse -> analysis.gates -> write)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from .args import add_model_option_args, add_run_args, model_overrides
from .progress import add_quiet_arg, progress_bar


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
    add_quiet_arg(p)
    add_model_option_args(p)
    add_run_args(p, amp=False)  # gate statistics are kept in full precision
    p.set_defaults(handler=gates)


def _load_mask(args: argparse.Namespace) -> tuple[np.ndarray | None, str | None]:
    from ..masks import probe_mask

    if args.mask is not None:
        try:
            with np.load(args.mask, allow_pickle=False) as archive:
                return archive["mask"].astype(bool), str(args.mask)
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"cannot read mask {str(args.mask)!r}: {err}") from None
    mask = probe_mask(args.video)
    return (mask, "probe mask next to the clip") if mask is not None else (None, None)


def gates(args: argparse.Namespace) -> int:
    """Write tables, figures, gate tensors and run.json for one checkpoint and video."""
    from analysis.gates import gate_report, gated_ops, intervention_accuracy, summary_table
    from analysis.gates_figures import intervention_figure, report_figures

    from .. import rundir
    from ..datasets import open_dataset
    from ..device import prepare_model, resolve_device
    from ..models import load_model
    from .outputs import write_arrays, write_figures, write_tables

    device = resolve_device(args.device)
    model = prepare_model(load_model(args.checkpoint, **model_overrides(args)), device)
    try:
        layers = [name for name, _ in gated_ops(model)]
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.layer and args.layer not in layers:
        raise UserError(f"no gated layer {args.layer!r}; choose from {', '.join(layers)}")
    mask, mask_source = _load_mask(args)
    # decodes the video: a bad one stops here, by name
    report = gate_report(model, args.video, mask, memory=args.max_memory)
    dataset = rundir.dataset_record(open_dataset(args.data), args.data, max_clips=args.max_clips) \
        if args.data else None
    record = rundir.model_record(args.checkpoint.stem, model, args.checkpoint)
    run = rundir.new_run(
        "gates", args.command_line, models=[record],
        dataset=dataset, video=rundir.video_record(args.video),
        seeds={"note": "deterministic: test-time segment sampling, no randomness"},
        options={"layer": args.layer, "mask": mask_source})
    tables = report.tables()
    figures = report_figures(report, args.layer)
    if args.data:
        with progress_bar("interventions", "passes", args.quiet) as update:
            accuracy = intervention_accuracy(model, args.data, max_clips=args.max_clips, progress=update,
                                             memory=args.max_memory)
        tables["intervention_accuracy"] = accuracy
        figures["intervention_accuracy"] = intervention_figure(accuracy, "accuracy_change")
    out: Path = args.out
    written = write_tables(tables, out)
    report.statistics.to_parquet(out / "results.parquet", index=False)  # one row per layer, group, frame
    summary = summary_table(report)
    summary.to_csv(out / "summary.csv", index=False)
    arrays = write_arrays(report.gate_arrays(), out / "gates.npz")
    shown = write_figures(figures, out, args.png)
    rundir.write_run(out, rundir.finish(run, outputs={"tables": sorted(written), "figures": shown,
                                                      "arrays": [arrays]}))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(written)} tables, {len(shown)} figures and the gates of {len(layers)} layers to {out}")
    return 0
