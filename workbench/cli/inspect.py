"""`inspect CKPT`: what a checkpoint file is (layout, scheme, backbone, classes, frames, preprocessing,
parameters, FLOPs), or for a file that does not load, what each release family made of it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_model_option_args, model_overrides, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inspect subcommand."""
    p = sub.add_parser("inspect", help="describe a checkpoint: layout, scheme, classes, frames, cost",
                       description="Describe a checkpoint file: the layout recognised (workbench, the "
                                   "GSM/GSF/TSM/TSN releases, torchvision video models, MMAction2), "
                                   "the scheme and backbone it loads as, classes, frames, preprocessing, "
                                   "parameters and FLOPs; for a file that does not load, which keys or "
                                   "shapes did not fit.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow checkpoints that need weights_only=False (runs code from the file)")
    add_model_option_args(p)
    p.set_defaults(handler=inspect_checkpoint)


def inspect_checkpoint(args: argparse.Namespace) -> int:
    """Print the description; exit 2 (with one error line) when the file does not load."""
    from ..models.inspect import describe_checkpoint

    description = describe_checkpoint(args.checkpoint, unsafe_pickle=args.unsafe_pickle,
                                      **model_overrides(args))
    if args.format == "json":
        print_json(description.to_dict())
    else:
        print("\n".join(description.lines()))
    if not description.loads:
        print(f"error: {description.error}", file=sys.stderr)
        return 2
    return 0
