"""Part files of a chunked, resumable batch analysis (temporal-test, attribute --data).

The work is cut into numbered chunks; each finished chunk is written atomically as
`<run dir>/parts/part-NNNNNN.parquet`, so a killed run re-run with the same arguments scores only
the chunks whose part is missing. Under torch.distributed each rank scores its share of the chunks
(`workbench.distributed.shard`) and, after a barrier, every part can be read by any rank. Without a
run directory the parts are kept in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from workbench import distributed

PARTS_DIR = "parts"
T = TypeVar("T")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file and rename: a kill leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def on_main(action: Callable[[], T], error: type[Exception]) -> T | None:
    """`action()` on rank 0 only (it creates or checks the run directory); when it raises `error`,
    every rank raises it with the same message, so no rank goes on alone. None on the other ranks."""
    context = distributed.current()
    result, message = None, None
    if context.is_main:
        try:
            result = action()
        except error as err:
            message = str(err)
    message = distributed.broadcast(message)
    if message is not None:
        raise error(message)
    return result


class Parts:
    """The parts of one run: on disk under `run_dir/parts` (resumable), or in memory without a run_dir."""

    def __init__(self, run_dir: Path | None) -> None:
        self.folder = run_dir / PARTS_DIR if run_dir is not None else None
        self._memory: dict[int, pd.DataFrame] = {}

    def path(self, number: int) -> Path:
        assert self.folder is not None
        return self.folder / f"part-{number:06d}.parquet"

    def pending(self, numbers: Iterable[int]) -> list[int]:
        """Those of `numbers` whose part is not written yet."""
        return [n for n in numbers if self.folder is None or not self.path(n).is_file()]

    def save(self, number: int, rows: pd.DataFrame) -> None:
        """Keep a finished chunk's rows (written atomically when the run has a directory)."""
        if self.folder is None:
            self._memory[number] = rows
        else:
            write_atomic(self.path(number), lambda tmp: rows.to_parquet(tmp, index=False))

    def read(self, count: int) -> list[pd.DataFrame]:
        """Parts 0 .. count-1 in chunk order (every rank's, once all have passed a barrier)."""
        return [self._memory[n] if n in self._memory else pd.read_parquet(self.path(n)) for n in range(count)]
