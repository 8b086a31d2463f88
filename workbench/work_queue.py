"""One server-wide budget for heavy work: analyses of every session wait their turn instead of all
running at once.

A job asks for a turn with its memory cost and an estimate of its seconds. Jobs are admitted first come,
first served, while the running jobs' costs plus its own fit the memory budget and fewer than `slots` jobs
run (the CPU cores are shared, so two heavy jobs at once only take longer each). A waiting job sees its
place in the queue and an estimate of its wait; a job whose owner goes away (an app session that closes
or reruns) leaves the queue, or frees its budget, in `finally`, whatever stops it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .allocator import release_free_memory

WaitFn = Callable[[int, float], None]  # (jobs ahead, estimated seconds to wait) -> None; may raise to give up


@dataclass
class Job:
    """One job: who asked, what it costs, when it started."""

    number: int
    owner: str
    cost: int  # bytes of memory it needs
    estimate: float  # seconds it is expected to run
    started: float | None = None  # monotonic time it was admitted
    label: str = ""
    cancelled: bool = False  # its owner went away while it waited
    done: threading.Event = field(default_factory=threading.Event)


class WorkCancelled(Exception):
    """A waiting job was dropped because its owner went away."""


class WorkQueue:
    """First come, first served admission of jobs within a memory budget and a number of slots."""

    def __init__(self, budget: int, slots: int = 1) -> None:
        if budget <= 0 or slots < 1:
            raise ValueError("a work queue needs a positive budget and at least one slot")
        self.budget = budget
        self.slots = slots
        self._lock = threading.Condition()
        self._waiting: list[Job] = []
        self._running: list[Job] = []
        self._numbers = itertools.count()

    def _fits(self, job: Job) -> bool:
        used = sum(j.cost for j in self._running)
        # a job larger than the whole budget runs alone (the caller refused what cannot fit at all)
        alone = not self._running and job.cost > self.budget
        return len(self._running) < self.slots and (used + job.cost <= self.budget or alone)

    def _admit(self) -> None:
        """Start waiting jobs in order while the head fits (never overtaking it)."""
        while self._waiting and self._fits(self._waiting[0]):
            job = self._waiting.pop(0)
            job.started = time.monotonic()
            self._running.append(job)
        self._lock.notify_all()

    def _ahead(self, job: Job) -> tuple[int, float]:
        """Jobs ahead of `job` and the seconds they are expected to take (running ones: what is left)."""
        now = time.monotonic()
        left = [max(0.0, j.estimate - (now - (j.started or now))) for j in self._running]
        queued = self._waiting[: self._waiting.index(job)] if job in self._waiting else []
        ahead = len(queued) + len(self._running)
        # slots run in parallel: the wait is about the work ahead spread over them
        return ahead, (sum(left) + sum(j.estimate for j in queued)) / self.slots

    @contextmanager
    def turn(self, owner: str, cost: int, estimate: float, on_wait: WaitFn | None = None,
             label: str = "", poll: float = 0.5) -> Iterator[Job]:
        """Wait for a turn (calling `on_wait(ahead, seconds)` every `poll` seconds), run the body, free
        the turn. Leaving early (an exception in `on_wait` or the body) frees it too."""
        job = Job(next(self._numbers), owner, int(cost), float(estimate), label=label)
        with self._lock:
            self._waiting.append(job)
            self._admit()
        try:
            while True:
                with self._lock:
                    if job in self._running:
                        break
                    if job.cancelled:
                        raise WorkCancelled(f"{owner}'s job was dropped from the queue")
                    ahead, seconds = self._ahead(job)
                if on_wait is not None:
                    on_wait(ahead, seconds)
                with self._lock:
                    if job not in self._running:
                        self._lock.wait(poll)
            yield job
        finally:
            with self._lock:
                if job in self._waiting:
                    self._waiting.remove(job)
                if job in self._running:
                    self._running.remove(job)
                job.done.set()
                self._admit()
            release_free_memory()  # what the job freed goes back, whichever thread ran it

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Who runs and who waits (for a status view and the tests)."""
        with self._lock:
            def rows(jobs: list[Job]) -> list[dict[str, object]]:
                return [{"owner": j.owner, "label": j.label, "cost": j.cost, "estimate": j.estimate}
                        for j in jobs]

            return {"running": rows(self._running), "waiting": rows(self._waiting)}

    def release_owner(self, owner: str) -> int:
        """Drop every waiting job of `owner` (a session that closed); returns how many. Running jobs
        end when their thread is stopped, freeing their turn in `turn`'s `finally`."""
        with self._lock:
            mine = [j for j in self._waiting if j.owner == owner]
            for job in mine:
                job.cancelled = True
                self._waiting.remove(job)
            self._admit()
            return len(mine)
