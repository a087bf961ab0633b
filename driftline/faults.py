"""Named points where the crash tests kill the job: inert unless ``DRIFTLINE_FAULT`` is set.

``DRIFTLINE_FAULT=<point>@<batch id>`` makes the driver SIGKILL itself the first time
it reaches ``<point>`` in that micro-batch: the same death as ``kill -9`` from outside,
at a moment a random kill would rarely hit. The points:

====================  ===========================================================
``kafka_transaction``  inside a dead-letter transaction: records sent, not committed
``dead_letter_files``  Spark wrote the batch's ``dead_letters`` files, the Delta commit not yet
``table_written``      the ``dead_letters`` table's batch committed, its topic not yet
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
# the job's; the crash test arms each at its own batch, in this order
POINTS = ("kafka_transaction", "dead_letter_files", "table_written", "state_write", "before_commit")
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
