"""CLI `attribute`: Captum attribution maps of one video, or attribution quality over a dataset.

One video: maps (npz), figures (html + json) and per model x method metrics (summary.csv).
`--data DIR`: per-clip metrics (results.parquet) and a per model x method table with bootstrap
95% intervals (summary.csv). Both write run.json (provenance). Parse -> analysis.attribution -> write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from analysis.attribution import METHODS

from ..errors import OptionError, UserError
from .args import add_model_option_args, add_run_args, model_labels, model_overrides
from .progress import add_quiet_arg, progress_bar

DEFAULT_METHODS = ("saliency", "integrated_gradients", "gradcam", "temporal_ablation")
SHOWN = ("model", "method", "clips", "energy_in_mask", "area_share", "pointing_hit", "deletion_auc_pixel",
         "insertion_auc_pixel", "temporal_spread")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `attribute` subcommand."""
    methods = "; ".join(f"{m.name} ({m.captum}): {m.description}" for m in METHODS.values())
    p = sub.add_parser("attribute", help="Captum attribution maps and their quality metrics",
                       description="Attribute one VIDEO (maps, figures, metrics) or score a dataset "
                                   "(--data: localisation, faithfulness, bootstrap intervals). "
                                   f"Methods: {methods}")
    p.add_argument("video", type=Path, nargs="?", help="video to attribute (omit with --data)")
    p.add_argument("--model", type=Path, action="append", required=True, metavar="CKPT",
                   help="checkpoint; repeat to compare models")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                   help=f"any of: {', '.join(METHODS)}, or 'all' (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--target", default=None,
                   help="class to explain: predicted, mirror (of the predicted class, or of the true class "
                        "with --data), true (--data only), a class name or index "
                        "(default: predicted; true with --data)")
    p.add_argument("--data", type=Path, help="dataset folder: score every clip (masks: probe datasets)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips, spread over classes")
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps")
    p.add_argument("--method-option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method's setting, e.g. occlusion.window=8 or smoothgrad.samples=16 (repeatable)")
    p.add_argument("--curve-steps", type=int, default=16, help="points on the pixel deletion/insertion curve")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and SmoothGrad noise)")
    p.add_argument("--sanity", action="store_true",
                   help="one video: also run the randomisation check (last two layers randomised)")
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    add_quiet_arg(p)
    p.add_argument("--strict", action="store_true",
                   help="--data: stop at the first clip that cannot be decoded (default: skip and list it)")
    p.add_argument("--chunk-clips", type=int, default=8,
                   help="--data: clips per part file (the unit of resumption and of sharing between ranks)")
    add_model_option_args(p)
    add_run_args(p)
    p.set_defaults(handler=attribute_command)


def _methods(requested: list[str]) -> list[str]:
    if requested == ["all"]:
        return list(METHODS)
    unknown = [m for m in requested if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or 'all'")
    return list(dict.fromkeys(requested))


def _value(text: str) -> Any:
    """A typed option value from its text: int, float, true/false, none, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def method_options(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per method, its options from --steps and --method-option (checked against the method table)."""
    options: dict[str, dict[str, Any]] = {"integrated_gradients": {"steps": args.steps}}
    for item in args.method_option:
        name, dot, rest = item.partition(".")
        key, equals, text = rest.partition("=")
        if not dot or not equals or not key:
            raise OptionError(f"--method-option {item!r}: expected METHOD.KEY=VALUE, e.g. occlusion.window=8")
        if name not in METHODS:
            raise OptionError(f"--method-option {item!r}: unknown method {name!r}")
        options.setdefault(name, {})[key.strip().replace("-", "_")] = _value(text)
    for name, given in options.items():
        METHODS[name].parse(given)  # an unknown key is an error now, not after an hour of work
    return {name: given for name, given in options.items() if name in methods}


def _target(args: argparse.Namespace) -> str | int:
    target = args.target or "true"
    if target not in ("true", "predicted", "mirror") and not target.isdigit():
        raise UserError("with --data, --target is true, predicted, mirror or a class index")
    return int(target) if target.isdigit() else target


def attribute_command(args: argparse.Namespace) -> int:
    """Run the attribution command; returns the exit status."""
    import pandas as pd

    from analysis.attribution import attribute_video, score_dataset, summarize_scores

    from .. import distributed, rundir
    from ..datasets import open_dataset
    from ..device import peak_memory, prepare_model, resolve_device
    from ..models import load_model
    from ..models.feature_layers import feature_stage

    methods = _methods(args.methods)
    if (args.video is None) == (args.data is None):
        raise UserError("give either a VIDEO or --data DIR (not both)")
    if args.data is not None and not args.data.is_dir():
        raise UserError(f"--data {str(args.data)!r} is not a folder")
    if args.video is not None and not args.video.exists():
        raise UserError(f"no such video: {str(args.video)!r}")
    if args.amp != "off":
        raise UserError("--amp is for inference-only commands: attribution needs full-precision gradients")
    device = resolve_device(args.device)
    if distributed.env_context().distributed and args.data is None:
        raise UserError("several processes (torchrun) share a --data run; attribute one VIDEO in one process")
    if args.chunk_clips < 1:
        raise UserError("--chunk-clips must be >= 1")
    options = method_options(args, methods)
    names = model_labels(args.model)
    models = {name: prepare_model(load_model(path, **model_overrides(args)), device)
              for name, path in zip(names, args.model)}
    records = [rundir.model_record(name, model, path)
               for (name, model), path in zip(models.items(), args.model)]
    if "layer" in options.get("gradcam", {}):  # a layer a model lacks: one error before any work
        for model in models.values():
            feature_stage(model, str(options["gradcam"]["layer"]))
    settings = {"methods": methods, "target": args.target, "ig_steps": args.steps,
                "curve_steps": args.curve_steps, "bootstrap": args.bootstrap, "method_options": options}
    seeds = {"bootstrap": args.seed, "smoothgrad": args.seed}
    out: Path = args.out
    if args.video is not None:
        with progress_bar("attribution", "maps", args.quiet) as update:
            result = attribute_video(models, args.video, methods, args.target, options=options,
                                     curve_steps=args.curve_steps, seed=args.seed, sanity=args.sanity,
                                     progress=update, memory=args.max_memory)
        run = rundir.new_run("attribute", args.command_line, models=records,
                             video=rundir.video_record(args.video), seeds=seeds, options=settings)
        _write_video(result, methods, out)
        results = result.rows
        summary = results.drop(columns=["profile"])
    else:
        target = _target(args)
        dataset = rundir.dataset_record(open_dataset(args.data), args.data, max_clips=args.max_clips)
        # what decides the rows (GPU and CPU round differently): a resumed run must match it
        identity = {"models": [{"name": r["label"], "path": r["path"], "sha256": r["sha256"]}
                               for r in records],
                    "methods": methods, "target": args.target, "dataset": dataset, "seeds": seeds,
                    "options": {"ig_steps": args.steps, "curve_steps": args.curve_steps, "methods": options},
                    "device": device.type}
        run = rundir.new_run("attribute", args.command_line, models=records, dataset=dataset, seeds=seeds,
                             options=settings, identity=identity)
        # torchrun (one node or several) describes the process group in the environment
        context = distributed.init_from_env(device)
        try:
            with progress_bar("attribution", "maps", args.quiet) as update:
                results = score_dataset(models, args.data, methods, target=target, max_clips=args.max_clips,
                                        progress=update, curve_steps=args.curve_steps, options=options,
                                        out=out, run=run, chunk_clips=args.chunk_clips, seed=args.seed,
                                        strict=args.strict, memory=args.max_memory)
            memory = distributed.gather({"rank": context.rank, **peak_memory(device)})
        finally:
            distributed.shutdown()
        run["execution"] = {"device": str(device), "world_size": context.world_size,
                            "chunk_clips": args.chunk_clips}
        run["peak_memory"] = {"max_rss_mib": max(m["max_rss_mib"] for m in memory), "ranks": memory}
        if not context.is_main:  # rank 0 writes and prints the merged table once
            return 0
        run["skipped"] = results.attrs.get("skipped", [])
        for skipped in run["skipped"]:
            print(f"warning: skipped {skipped['video']}: {skipped['reason']}", file=sys.stderr)
        if results.empty:
            raise UserError("no clip could be scored (none decodes, or no target class for any clip)")
        summary = summarize_scores(results, reps=args.bootstrap, seed=args.seed)
    results.to_parquet(out / "results.parquet", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    rundir.write_run(out, rundir.finish(run, rows=len(results)))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[[c for c in SHOWN if c in summary]].round(3).to_string(index=False))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _write_video(result: Any, methods: list[str], out: Path) -> None:
    """Maps (npz per model), figures and the agreement table of a one-video attribution."""
    from analysis.attribution_figures import video_figures

    from .outputs import write_arrays, write_figures

    for name in result.frames:
        write_arrays(result.arrays(name), out / "maps" / f"{name}.npz")
    write_figures(video_figures(result, methods), out)
    result.agreements.to_csv(out / "agreement.csv", index=False)
