"""Decoding for the runner: each video once, one preprocessed clip per model input, in video order."""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from workbench.errors import VideoError
from workbench.models.spec import ModelSpec
from workbench.video import load_clips


@dataclass
class Item:
    """One video of the dataset as the runner sees it."""

    path: str
    name: str  # shown and stored: path relative to the dataset root
    label_name: str | None


def input_key(spec: ModelSpec) -> tuple:
    """Models with equal keys see the same preprocessed clip."""
    return (spec.frames, spec.input_size, spec.resize_to, spec.mean, spec.std, spec.channel_order,
            spec.value_scale)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run small tensor ops (preprocessing one clip) on one torch thread, then restore.

    On a busy CPU, several threads on a tiny op spend their time waiting on each other: measured
    here, preprocessing an 8-frame 48 px clip took 86 ms on 2 threads and 2 ms on 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class DecodeDataset(torch.utils.data.Dataset):
    """Decodes videos for the runner; a torch Dataset so DataLoader workers can decode ahead."""

    def __init__(self, items: Sequence[tuple[int, Item]], specs: Sequence[ModelSpec]) -> None:
        self.items = list(items)
        self.specs = list(specs)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> tuple[int, list[torch.Tensor] | None, str | None]:
        index, item = self.items[position]
        try:
            return index, load_clips(item.path, self.specs), None
        except VideoError as err:  # reported by the main process, in video order
            return index, None, str(err)


def decoded(
    items: Sequence[tuple[int, Item]], specs: Sequence[ModelSpec], workers: int, pin: bool
) -> Iterator[tuple[int, list[torch.Tensor] | None, str | None]]:
    """(video index, clips per spec or None, error or None) for each item, in the order given.

    With workers, decoding runs in DataLoader processes ahead of the model (each keeps 2 videos in
    flight): the runner holds at most a chunk plus those, never the dataset's decoded videos."""
    dataset = DecodeDataset(items, specs)
    if workers <= 0:
        yield from _ahead(dataset, AHEAD)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         pin_memory=pin, prefetch_factor=2)
    yield from loader


AHEAD = 4  # videos decoded ahead of the model in a thread (a few MB each at 224 px)
_DONE = object()


def _ahead(dataset: DecodeDataset, depth: int) -> Iterator[tuple[int, list[torch.Tensor] | None, str | None]]:
    """The dataset's entries in order, decoded in a thread up to `depth` ahead of the consumer.

    Decoding (the decoder's C code and one-thread preprocessing) runs while the model runs, so the
    runner's time approaches the bare forward passes'. The thread uses one torch thread (its own
    setting: torch's thread count is per thread) and stops when the consumer stops. (Recording the
    warnings swaps the warnings module's state for the duration of one decode; a warning the main
    thread raises meanwhile is said with that video's, later, not lost.)"""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        # No torch.set_num_threads(1) here: with torch 2.13 it is process-wide, and it left the scoring
        # (main) thread on one thread for the rest of the run and after it (measured: a ResNet-50 8x224
        # run 6.0 s with it, 3.3-4.9 s without; benchmarks/temporal_throughput.py at 8x224 scored
        # 0.8 clips/s on both sides with it, 1.2 without).
        try:
            for position in range(len(dataset)):
                # a video's warnings (a cut file, ...) are said when the consumer takes it, in order, and
                # not at all for videos decoded ahead of a run that stops
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    value = dataset[position]
                if not put((value, caught)):
                    return
        except BaseException as err:  # re-raised in the consumer, in order
            put(err)
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="workbench-decode", daemon=True)
    thread.start()
    try:
        while True:
            value = out.get()
            if value is _DONE:
                return
            if isinstance(value, BaseException):
                raise value
            entry, caught = value
            for warning in caught:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            yield entry
    finally:
        stop.set()
        thread.join()
