"""One progress bar for every long command: the analyses report (done, total); the command draws it.

The bar goes to stderr with the elapsed time and an ETA, and stays silent with --quiet, when stderr is
not a terminal (a log file, a pipe, a CI job) and on every torchrun rank but the first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[int, int], None]  # (done, total)
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}, ETA {remaining}]"


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    """The --quiet flag of a long command."""
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def interactive() -> bool:
    """True when stderr is a terminal someone watches."""
    return sys.stderr.isatty()


@contextmanager
def progress_bar(what: str, unit: str = "clips", quiet: bool = False) -> Iterator[Progress]:
    """A (done, total) callback drawing a bar with an ETA on stderr while the block runs."""
    from tqdm import tqdm

    from ..distributed import env_context

    shown = not quiet and interactive() and env_context().rank == 0
    bar = tqdm(desc=what, unit=unit, disable=not shown, file=sys.stderr, bar_format=BAR_FORMAT,
               dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
