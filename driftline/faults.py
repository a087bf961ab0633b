"""Named points where the crash tests kill the job: inert unless ``DRIFTLINE_FAULT`` is set.

``DRIFTLINE_FAULT=<point>@<batch id>`` makes the driver SIGKILL itself the first time
it reaches ``<point>`` in that micro-batch: the same death as ``kill -9`` from outside,
at a moment a random kill would rarely hit. The points:

====================  ===========================================================
``kafka_transaction``  inside a dead-letter transaction: records sent, not committed
``table_written``      the ``dead_letters`` table's batch written, its topic not yet
``state_write``        one kind of the window state's new version written, not all
``before_commit``      every table and topic written, the state version not committed
``replay_transaction``  ``driftline dlq replay``: a transaction's records sent, not committed
                       (the number after ``@`` counts the replay's transactions from 0)
====================  ===========================================================

Read once per call from the environment of the driver process, so a restarted job
without the variable runs normally.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

ENV = "DRIFTLINE_FAULT"
POINTS = ("kafka_transaction", "table_written", "state_write", "before_commit")  # the job's
REPLAY_POINT = "replay_transaction"


def armed() -> bool:
    """Whether a fault point is set (a caller may then make the point's moment exact)."""
    return bool(os.environ.get(ENV))


def point(name: str, batch_id: int) -> None:
    """SIGKILL this process if ``DRIFTLINE_FAULT`` names ``name`` at ``batch_id``."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, batch = wanted.partition("@")
    if target == name and batch.isdigit() and int(batch) == batch_id:
        logger.warning("fault_injected point=%s batch=%d: SIGKILL", name, batch_id)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
