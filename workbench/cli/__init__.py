"""Command line: `python -m workbench <command>`; user errors are one line on stderr and exit 2.

The CLI is the top floor, beside the app: it may import the core (`workbench.*`) and the analyses
(`analysis.*`); nothing below imports it. Each command module has `register(subparsers)`, which adds
its subcommands and sets `handler=<function(args) -> int>` on them; a command is parse -> one
library call -> print. A new command adds its module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import warnings

from ..errors import VideoWarning, is_user_error

COMMAND_MODULES = (
    "workbench.cli.models",
    "workbench.cli.temporal",
    "workbench.cli.gates",
    "workbench.cli.attribute",
    "workbench.cli.probes",
    "workbench.cli.report",
    "workbench.cli.inspect",
)


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "workbench", *argv])  # provenance, as typed
    try:
        with warnings.catch_warnings():
            # every warning of the command is one `warning:` line on stderr; each partly decodable
            # video says so, not only the first
            warnings.simplefilter("always", VideoWarning)
            warnings.showwarning = _warning_line
            if getattr(args, "decoder", None):
                from ..video import set_decoder

                set_decoder(args.decoder)
            return args.handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # user-facing boundary: one line, never a traceback
        if not is_user_error(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


def _warning_line(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    print(f"warning: {message}", file=sys.stderr)
