"""Command line: `python -m workbench <command>`; user errors are one line on stderr and exit 2.

Each command module has `register(subparsers)`, which adds its subcommands and sets
`handler=<function(args) -> int>` on them. A new analysis adds its module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings

COMMAND_MODULES = (
    "workbench.commands",
    "workbench.commands_temporal",
    "workbench.commands_gates",
    "workbench.commands_attribution",
    "workbench.commands_report",
)


class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m workbench",
        description="Gate-Shift Workbench: build, train, test and look inside video models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # user-facing boundary: one line, never a traceback
        from .errors import is_user_error

        if not is_user_error(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


def print_json(data: object) -> None:
    """JSON to stdout."""
    print(json.dumps(data, indent=2, default=str))
