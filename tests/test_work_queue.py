"""The server-wide work queue: jobs of several sessions wait their turn within one memory budget."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.work_queue import WorkCancelled, WorkQueue

GB = 2**30


def test_jobs_run_first_come_first_served_within_the_budget() -> None:
    queue = WorkQueue(budget=3 * GB, slots=2)
    seen_ahead, waiting_at_start = {}, {}
    running_at_once = []
    queued = {f"s{i}": threading.Event() for i in range(4)}  # set once the job is in the queue

    def job(name: str, cost: int) -> None:
        def waiting(ahead: int, seconds: float) -> None:
            seen_ahead.setdefault(name, ahead)
            queued[name].set()

        with queue.turn(name, cost, estimate=0.2, on_wait=waiting, poll=0.05):
            queued[name].set()
            now = queue.snapshot()
            running_at_once.append(len(now["running"]))
            waiting_at_start[name] = [row["owner"] for row in now["waiting"]]
            time.sleep(0.3)

    threads = [threading.Thread(target=job, args=(f"s{i}", cost))
               for i, cost in enumerate((2 * GB, 2 * GB, 1 * GB, 1 * GB))]
    for i, thread in enumerate(threads):  # arrive in name order, however busy the machine is
        thread.start()
        assert queued[f"s{i}"].wait(10)
    for thread in threads:
        thread.join(timeout=30)
    # nobody overtakes: when a job starts, no one who came before still waits (s2, 1 GB, fits beside
    # s0 but waits for s1; s1 and s2 may then start together)
    assert set(waiting_at_start) == set(queued)
    for i in range(4):
        assert not {f"s{j}" for j in range(i)} & set(waiting_at_start[f"s{i}"]), waiting_at_start
    assert max(running_at_once) <= 2
    assert seen_ahead["s1"] >= 1 and seen_ahead["s3"] >= 1  # waiting jobs were told their place
    assert queue.snapshot() == {"running": [], "waiting": []}


def test_a_job_that_gives_up_while_waiting_frees_its_place() -> None:
    queue = WorkQueue(budget=GB, slots=1)
    gate = threading.Event()
    outcome = {}

    def holder() -> None:
        with queue.turn("a", GB, 1.0):
            gate.wait(10)

    def impatient() -> None:
        def waiting(ahead: int, seconds: float) -> None:
            raise KeyboardInterrupt  # what a stopped app session does: an exception where it waits

        try:
            with queue.turn("b", GB, 1.0, on_wait=waiting):
                outcome["b"] = "ran"
        except KeyboardInterrupt:
            outcome["b"] = "left"

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=impatient)
    second.start()
    second.join(10)
    assert outcome == {"b": "left"} and queue.snapshot()["waiting"] == []
    gate.set()
    first.join(10)
    assert queue.snapshot() == {"running": [], "waiting": []}


def test_an_owner_that_closes_drops_its_waiting_jobs() -> None:
    queue = WorkQueue(budget=GB, slots=1)
    gate = threading.Event()
    result = {}

    def holder() -> None:
        with queue.turn("a", GB, 1.0):
            gate.wait(10)

    def waiter() -> None:
        try:
            with queue.turn("b", GB, 1.0, poll=0.05):
                result["b"] = "ran"
        except WorkCancelled:
            result["b"] = "cancelled"

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    threads[0].start()
    time.sleep(0.1)
    threads[1].start()
    time.sleep(0.2)
    assert queue.release_owner("b") == 1
    threads[1].join(10)
    gate.set()
    threads[0].join(10)
    assert result == {"b": "cancelled"}


def test_a_job_larger_than_the_budget_runs_alone() -> None:
    queue = WorkQueue(budget=GB, slots=2)
    with queue.turn("big", 3 * GB, 1.0):
        assert queue.snapshot()["running"][0]["owner"] == "big"
    with pytest.raises(ValueError):
        WorkQueue(budget=0)
