"""Command line: `python -m workbench <command>`; errors are one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


def command(name: str) -> Callable:
    """Register a handler for a subcommand."""

    def register(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = func
        return func

    return register


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m workbench",
        description="Gate-Shift Workbench: build, train, test and look inside video models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("zoo", help="parameters, FLOPs and CPU latency of every scheme")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=174, help="classifier width (default: Something-v1's 174)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per scheme")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")

    p = sub.add_parser("probe-data", help="generate the temporal probe dataset")
    p.add_argument("out", type=Path)
    p.add_argument("--clips-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=48)

    p = sub.add_parser("predict", help="classify one video with a checkpoint")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("video", type=Path)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow checkpoints that need weights_only=False (runs code from the file)")

    p = sub.add_parser("train", help="train a model on a video dataset")
    p.add_argument("--scheme", required=True)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. probe data)")
    p.add_argument("--val-data", type=Path, help="validation dataset (default: a split of --data)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--backbone", default="resnet-tiny")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--no-resume", action="store_true", help="ignore a saved training state")

    p = sub.add_parser("evaluate", help="accuracy, per-class and reverse->mirror on a dataset")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("demo", help="list or retrain the shipped demo models")
    p.add_argument("--list", action="store_true")
    p.add_argument("--train", action="store_true", help="regenerate every demo model from scratch")
    p.add_argument("--schemes", nargs="*", help="only these schemes (with --train)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    from . import commands  # noqa: F401 - registers the handlers

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - user-facing boundary: one line, never a traceback
        from .errors import is_user_error

        if not is_user_error(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


def print_json(data: object) -> None:
    """JSON to stdout."""
    print(json.dumps(data, indent=2, default=str))
