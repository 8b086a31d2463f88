"""CLI `temporal-test`: frame-order perturbation experiments (analysis.temporal), resumable.

Also runnable on its own: `python -m workbench.cli.temporal --model CKPT --data DIR --out RUN`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.perturb import PERTURBATIONS

from ..errors import UserError
from .args import add_model_option_args, add_run_args, model_labels, model_overrides
from .progress import add_quiet_arg, progress_bar

SUMMARY_COLUMNS = ["model", "perturbation", "level", "videos", "accuracy", "ci_low", "ci_high", "change",
                   "flip_rate", "mean_kl", "temporal_change", "static_change", "mirror_rate"]
COMPARISON_COLUMNS = ["perturbation", "model_a", "model_b", "difference", "ci_low", "ci_high", "p_value",
                      "mcnemar_p"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `temporal-test` subcommand."""
    p = sub.add_parser("temporal-test", help="frame-order perturbation tests (shuffle, reverse, sweep, ...)",
                       description="Perturbations: " + "; ".join(
                           f"{name}: {row.description}" for name, row in PERTURBATIONS.items()) + ".")
    add_arguments(p)
    p.set_defaults(handler=temporal_test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The temporal-test options."""
    p.add_argument("--model", action="append", type=Path, required=True, metavar="CKPT",
                   help="checkpoint to test (repeat for several models)")
    p.add_argument("--data", type=Path, required=True, help="dataset folder, labels .csv or list .txt")
    p.add_argument("--out", type=Path, required=True,
                   help="run directory; re-run with the same arguments to resume an interrupted run")
    p.add_argument("--perturbations", nargs="+", metavar="NAME",
                   help=f"any of {' '.join(PERTURBATIONS)} (default: all)")
    p.add_argument("--permutations", type=int, default=5, help="repeats of each random perturbation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block", type=int, default=2, help="block length (frames) for block_shuffle")
    p.add_argument("--levels", type=float, nargs="+", metavar="TAU",
                   help="Kendall-tau distances for the sweep (default 0 0.2 0.4 0.6 0.8 1)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="clips per pass at most (fewer when --max-memory holds fewer; default 64)")
    p.add_argument("--chunk-videos", type=int, default=32, help="videos per part file (unit of resumption)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for intervals")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes decoding videos ahead of the model (0: decode in-process)")
    add_run_args(p)
    add_quiet_arg(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first video that cannot be decoded (default: skip it and list it)")
    add_model_option_args(p)


def temporal_test(args: argparse.Namespace) -> int:
    """Run the experiment, write the run directory and print the summary."""
    import torch

    from analysis.temporal import ExperimentConfig, run_experiment

    from .. import distributed
    from ..device import prepare_model, resolve_amp, resolve_device
    from ..models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workers < 0:
        raise UserError("--workers must be >= 0")
    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    if not args.data.exists():
        raise UserError(f"no such dataset: {args.data}")
    options = {"permutations": args.permutations, "seed": args.seed, "block": args.block,
               "batch_size": args.batch_size, "chunk_videos": args.chunk_videos, "bootstrap": args.bootstrap}
    if args.perturbations:
        options["perturbations"] = tuple(args.perturbations)
    if args.levels:
        options["levels"] = tuple(args.levels)
    config = ExperimentConfig(**options)
    labels = model_labels(args.model)
    models = {label: prepare_model(load_model(path, **model_overrides(args)), device)
              for label, path in zip(labels, args.model)}
    # torchrun (one node or several) describes the process group in the environment
    context = distributed.init_from_env(device)
    try:
        with progress_bar("temporal test", "videos", args.quiet) as update:
            result = run_experiment(
                models, args.data, config, args.out, checkpoints=dict(zip(labels, args.model)),
                progress=update, command=args.command_line,
                warn=lambda message: print(f"warning: {message}", file=sys.stderr),
                device=device, amp=amp, workers=args.workers, strict=args.strict, memory=args.max_memory,
            )
    finally:
        distributed.shutdown()
    if not context.is_main:  # rank 0 prints the merged result once
        return 0
    summary = result.summary[SUMMARY_COLUMNS].copy()
    summary["level"] = summary["level"].where(summary["level"] >= 0)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    if not result.comparisons.empty:
        print("\npaired comparisons (sensitivity = original accuracy - perturbed accuracy, per video):")
        comparisons = result.comparisons[COMPARISON_COLUMNS]
        print(comparisons.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    skipped = len(result.run.get("skipped", []))
    note = f"; {skipped} video(s) skipped, listed with their reasons in run.json" if skipped else ""
    print(f"\nwrote {args.out} ({result.run['rows']} rows{note})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `temporal-test` directly (`python -m workbench.cli.temporal ...`): same as the CLI."""
    from . import main as cli_main

    return cli_main(["temporal-test", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
