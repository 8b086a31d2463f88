"""Arguments several commands share: devices, release-checkpoint options, model labels, JSON output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..device import AMP_CHOICES
from ..errors import OptionError
from ..model_options import OPTIONS, parse_model_options
from ..models.memory import DEFAULT_MAX_MEMORY, format_size, parse_size
from ..video import DECODERS, ENV_VAR


def add_device_args(parser: argparse.ArgumentParser, amp: bool = True) -> None:
    """Add --device (and --amp for inference-only commands) to a command's parser."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    if amp:
        parser.add_argument("--amp", choices=AMP_CHOICES, default="off",
                            help="inference precision on CUDA: bf16 or fp16 autocast (default: off)")


def memory_size(text: str) -> int:
    """--max-memory's value in bytes; argparse reports a bad one as `error: argument --max-memory: ...`."""
    try:
        return parse_size(text)
    except OptionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_memory_arg(parser: argparse.ArgumentParser) -> None:
    """Add --max-memory: the peak resident memory the command may use; batch sizes follow from it."""
    parser.add_argument("--max-memory", type=memory_size, default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                        dest="max_memory",
                        help="peak memory the whole command may use, e.g. 2GiB or 6000MB; clips per pass "
                             "follow from the model's measured footprint, and work that cannot fit at "
                             f"batch 1 is refused up front (default: {format_size(DEFAULT_MAX_MEMORY)})")


def add_run_args(parser: argparse.ArgumentParser, amp: bool = True) -> None:
    """Add what every analysis command takes about where and how it runs: --device (--amp), --max-memory
    and --decoder."""
    add_device_args(parser, amp)
    add_memory_arg(parser)
    add_decoder_arg(parser)


def add_decoder_arg(parser: argparse.ArgumentParser) -> None:
    """Add --decoder to a command that decodes videos (the CLI applies it before the command runs)."""
    parser.add_argument("--decoder", choices=DECODERS, default=None,
                        help=f"video decoder: auto (decord where installed, else PyAV), decord or pyav "
                             f"(default: ${ENV_VAR}, else auto)")


def add_model_option_args(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable `--model-option KEY=VALUE` to a command that loads checkpoints."""
    parser.add_argument(
        "--model-option", action="append", default=[], metavar="KEY=VALUE", dest="model_option",
        help="what a release checkpoint (GSM/GSF/TSM/TSN, an MMAction2 file without meta.cfg) cannot "
             "say, or a smaller crop or clip, e.g. frames=16 or "
             f"classes=labels.txt; repeat for several; keys: {', '.join(OPTIONS)}",
    )


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The load_model overrides a parsed command line asks for (empty without --model-option)."""
    return parse_model_options(getattr(args, "model_option", None) or [])


def model_labels(paths: list[Path]) -> list[str]:
    """Model labels from checkpoint names, made unique (gsm, gsm-2, ...)."""
    labels: list[str] = []
    for path in paths:
        label, n = path.stem, 2
        while label in labels:
            label, n = f"{path.stem}-{n}", n + 1
        labels.append(label)
    return labels


def print_json(data: object) -> None:
    """JSON to stdout."""
    print(json.dumps(data, indent=2, default=str))
