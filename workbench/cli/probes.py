"""CLI `receptive-field`, `arrow-of-time`, `static-dynamic`: the probing analyses, each writing a run
directory (tables, figures, run.json). Parse -> one analysis call -> write -> print."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UserError
from .args import add_device_args, add_model_option_args, model_labels, model_overrides
from .progress import add_quiet_arg, progress_bar


def _common(p: argparse.ArgumentParser, data_help: str | None) -> None:
    p.add_argument("--model", action="append", type=Path, required=True, metavar="CKPT",
                   help="checkpoint to probe (repeat for several models)")
    if data_help is not None:
        p.add_argument("--data", type=Path, required=True, help=data_help)
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    p.add_argument("--png", action="store_true", help="also write PNG figures (kaleido + chromium)")
    add_quiet_arg(p)
    add_model_option_args(p)
    add_device_args(p, amp=False)  # gradients and probe features stay in full precision


def register(sub: argparse._SubParsersAction) -> None:
    """Add the probing subcommands."""
    p = sub.add_parser("receptive-field", help="how far along time each layer sees: gradient influence "
                                               "per frame offset, next to the analytic bound")
    _common(p, None)
    p.add_argument("--data", type=Path,
                   help="videos to take input clips from (default: the shipped probe clips)")
    p.add_argument("--clips", type=int, default=4, help="input clips averaged (default 4)")
    p.add_argument("--frames", type=int,
                   help="frames per input clip (default: the model's; give more to see a reach longer "
                        "than the model's clip, e.g. 2 x bound + 1)")
    p.add_argument("--probes", type=int, default=4, help="random projections per output frame (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=receptive_field_command)

    p = sub.add_parser("arrow-of-time", help="can a linear probe on each layer tell a clip from its reverse?")
    _common(p, "labelled videos (a probe set: each mirror pair's first class is forward, static classes "
               "are left out)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds, split by video (default 5)")
    p.add_argument("--max-videos", type=int, help="videos to use (default: all)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for intervals")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=arrow_of_time_command)

    p = sub.add_parser("static-dynamic", help="static and dynamic bias per layer (Kowal et al., CVPR 2022)")
    _common(p, "a pair set: python -m workbench probe-data OUT --pairs")
    p.add_argument("--max-pairs", type=int, help="pairs of each kind to use (default: all)")
    p.add_argument("--threshold", type=float, default=0.5, help="unit correlation threshold (default 0.5)")
    p.set_defaults(handler=static_dynamic_command)


def _models(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The models of --model (on --device) by label, and their run.json records."""
    from .. import rundir
    from ..device import prepare_model, resolve_device
    from ..models import load_model

    device = resolve_device(args.device)
    labels = model_labels(args.model)
    models = {label: prepare_model(load_model(path, **model_overrides(args)), device)
              for label, path in zip(labels, args.model)}
    records = [rundir.model_record(label, models[label], path) for label, path in zip(labels, args.model)]
    return models, records


def _write(args: argparse.Namespace, run: dict[str, Any], tables: dict[str, Any], figures: dict[str, Any],
           **results: Any) -> None:
    """Tables, figures and run.json into --out."""
    from .. import rundir
    from .outputs import write_figures, write_tables

    written = write_tables(tables, args.out)
    shown = write_figures(figures, args.out, args.png)
    rundir.write_run(args.out, rundir.finish(run, outputs={"tables": sorted(written), "figures": shown},
                                             **results))


def _existing(path: Path | None, what: str) -> None:
    if path is not None and not path.exists():
        raise UserError(f"no such {what}: {path}")


def receptive_field_command(args: argparse.Namespace) -> int:
    """Influence per layer and offset, the bound and how far it is reached."""
    from analysis.probes_figures import reach_figure, receptive_field_figure
    from analysis.receptive_field import input_clips, reach_summary, receptive_field

    from .. import rundir
    from ..demo import demo_probe_dir

    _existing(args.data, "dataset")
    if args.clips < 1 or args.probes < 1 or (args.frames is not None and args.frames < 1):
        raise UserError("--clips, --probes and --frames must be at least 1")
    data = args.data or demo_probe_dir()
    models, records = _models(args)
    clips = {label: input_clips(model, data, args.clips, args.frames) for label, model in models.items()}
    run = rundir.new_run("receptive-field", args.command_line, models=records,
                         seeds={"projections": args.seed},
                         options={"data": str(data), "clips": args.clips, "frames": args.frames,
                                  "probes": args.probes})
    table = receptive_field(models, clips, probes=args.probes, seed=args.seed)
    summary = reach_summary(table)
    _write(args, run, {"receptive_field": table, "summary": summary},
           {"receptive_field": receptive_field_figure(table), "reach": reach_figure(summary)})
    print(summary.to_string(index=False))
    print(f"wrote {args.out}")
    return 0


def arrow_of_time_command(args: argparse.Namespace) -> int:
    """Cross-validated forward-vs-reversed probe per layer."""
    from analysis.arrow_of_time import arrow_of_time
    from analysis.probes_figures import arrow_figure

    from .. import rundir
    from ..datasets import open_dataset

    _existing(args.data, "dataset")
    if args.folds < 2:
        raise UserError("--folds must be at least 2")
    models, records = _models(args)
    run = rundir.new_run("arrow-of-time", args.command_line, models=records,
                         dataset=rundir.dataset_record(open_dataset(args.data), args.data),
                         seeds={"folds": args.seed, "bootstrap": args.seed},
                         options={"folds": args.folds, "max_videos": args.max_videos,
                                  "bootstrap": args.bootstrap})
    with progress_bar("arrow of time", "videos", args.quiet) as update:
        result = arrow_of_time(models, args.data, folds=args.folds, max_videos=args.max_videos,
                               bootstrap=args.bootstrap, seed=args.seed, progress=update)
    _write(args, run, {"summary": result.summary, "results": result.results},
           {"arrow_of_time": arrow_figure(result.summary)}, videos=result.videos)
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out} ({result.videos} videos)")
    return 0


def static_dynamic_command(args: argparse.Namespace) -> int:
    """Static and dynamic scores, dimension shares and unit shares per layer."""
    from analysis.probes_figures import static_dynamic_figure, unit_share_figure
    from analysis.static_dynamic import read_pairs, static_dynamic

    from .. import rundir
    from ..fingerprints import file_sha256
    from ..probe import PAIRS_FILE

    _existing(args.data, "pair set")
    pairs = read_pairs(args.data)  # a folder without pairs.csv stops here, by name
    models, records = _models(args)
    dataset = {"path": str(args.data), "fingerprint": file_sha256(args.data / PAIRS_FILE),
               "pairs": len(pairs)}
    run = rundir.new_run("static-dynamic", args.command_line, models=records, dataset=dataset,
                         seeds={"note": "deterministic: test-time sampling, no randomness"},
                         options={"max_pairs": args.max_pairs, "threshold": args.threshold})
    with progress_bar("static/dynamic", "pairs", args.quiet) as update:
        result = static_dynamic(models, args.data, threshold=args.threshold, max_pairs=args.max_pairs,
                                progress=update)
    _write(args, run, {"summary": result.summary, "units": result.units},
           {"static_dynamic": static_dynamic_figure(result.summary),
            "unit_shares": unit_share_figure(result.summary)}, pairs=result.pairs)
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    counts = result.pairs
    print(f"wrote {args.out} ({counts['appearance']} appearance and {counts['motion']} motion pairs)")
    return 0
