"""The driver-wide gate on batch bodies: at most CONCURRENT_BATCHES run at once.

Each source is its own streaming query, so Spark calls the sources' ``foreachBatch``
functions from as many threads; the gate bounds what is in flight on the driver's heap.
The batch body is replaced by one that parks until released, so what is inside the gate
is counted, not timed.
"""

from __future__ import annotations

import threading

import pytest

from driftline.spark import batch
from driftline.spark.batch import BatchProcessor, SourcePlan
from driftline.testing.live import wait_until


class Parked(BatchProcessor):
    inside = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def _run(self, rows, batch_id: int) -> None:
        with Parked.lock:
            Parked.inside += 1
            Parked.most = max(Parked.most, Parked.inside)
        Parked.release.wait(30)
        with Parked.lock:
            Parked.inside -= 1


def test_no_more_than_the_gate_allows_run_at_once_and_the_rest_follow():
    plans = [
        SourcePlan(pipeline="p", source=f"s{i}", event_time="t", numeric=(), categorical=()) for i in range(5)
    ]
    threads = [threading.Thread(target=Parked(plan, None), args=(None, 0)) for plan in plans]
    for thread in threads:
        thread.start()
    wait_until(lambda: Parked.inside == batch.CONCURRENT_BATCHES, 30, "the gate to fill", poll=0.05)
    waiting = [t for t in threads if t.is_alive()]
    assert len(waiting) == len(threads)  # the ones inside are parked, the others wait at the gate
    assert Parked.inside == batch.CONCURRENT_BATCHES < len(threads)
    Parked.release.set()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert Parked.most == batch.CONCURRENT_BATCHES and Parked.inside == 0


def test_a_failing_batch_gives_its_place_back():
    class Failing(BatchProcessor):
        def _run(self, rows, batch_id: int) -> None:
            raise RuntimeError("boom")

    plan = SourcePlan(pipeline="p", source="s", event_time="t", numeric=(), categorical=())
    for _ in range(batch.CONCURRENT_BATCHES + 1):  # one more than the gate holds: each let go
        with pytest.raises(RuntimeError, match="boom"):
            Failing(plan, None)(None, 0)
    assert batch._GATE.acquire(blocking=False)  # a place is free: the failures released theirs
    batch._GATE.release()
