"""Kafka offsets as Spark's Kafka source checkpoints them: ``{topic: {"partition": offset}}``.

>>> from_offset({"t": {"1": 7, "0": 3}})
{('t', 1): 7, ('t', 0): 3}

Spark's offset log is ``<checkpoint>/offsets/<batchId>``: a version line, a JSON
metadata line, then one line per source with that source's end offsets for the batch.
Batch N covers ``[end of batch N-1, end of batch N)`` per partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Offsets = dict[str, dict[str, int]]
TopicPartitionKey = tuple[str, int]


def from_offset(offset: Mapping[str, Mapping[str, int]] | None) -> dict[TopicPartitionKey, int]:
    return {(topic, int(p)): int(o) for topic, parts in (offset or {}).items() for p, o in parts.items()}


def parse_offset_log_entry(text: str) -> Offsets | None:
    """The (single) source's end offsets in one offset-log file, or None if it has none.

    >>> parse_offset_log_entry('v1\\n{"batchWatermarkMs":0}\\n{"t":{"0":12}}\\n')
    {'t': {'0': 12}}
    """
    lines = text.splitlines()
    if len(lines) >= 3 and lines[2].strip() not in ("", "-"):
        return json.loads(lines[2])
    return None


def last_checkpointed_end(
    list_names: Callable[[str], list[str]], read_text: Callable[[str], str | None], checkpoint: str | None
) -> Offsets | None:
    """The end offset of the newest batch in a query's checkpoint, if there is one.

    This is where the query stands after a restart, before its first progress event
    (the lag monitor's starting point; read on the driver). ``list_names`` and
    ``read_text`` read the checkpoint's file system (:mod:`driftline.spark.fs`).
    """
    if not checkpoint:
        return None
    folder = str(checkpoint).rstrip("/") + "/offsets"
    for batch in sorted((int(n) for n in list_names(folder) if n.isdigit()), reverse=True):
        text = read_text(f"{folder}/{batch}")
        offsets = parse_offset_log_entry(text) if text is not None else None
        if offsets is not None:
            return offsets
    return None


@dataclass(frozen=True)
class OffsetLoss:
    """What one batch skipped because Kafka no longer had it.

    ``lost``: offsets per partition that the batch should have read but did not: below
    the log start offset when it read them (retention, ``delete_records``), or, on a
    ``reset`` partition, the new log's records below the batch's end, which Spark's
    source skips. ``reset``: partitions whose offsets went backwards (the topic was
    deleted and recreated), where how much of the old log was never read cannot be
    known any more.
    """

    lost: dict[TopicPartitionKey, int]
    reset: tuple[TopicPartitionKey, ...]

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())


def offset_loss(
    start: Mapping[TopicPartitionKey, int],
    end: Mapping[TopicPartitionKey, int],
    first_read: Mapping[TopicPartitionKey, int],
    earliest: Mapping[TopicPartitionKey, int],
) -> OffsetLoss:
    """The offsets a batch covering ``[start, end)`` should have read but could not.

    Notes
    -----
    Per partition p with start ``s``, end ``e``, first offset actually read ``f``
    (``e`` when none was) and log start offset now ``l`` (``ListOffsets`` earliest):

        lost_p = max(0, min(f, l, e) - s)     when e >= s
        lost_p = max(0, e - l), reset         when e < s

    Below ``l`` nothing can be read any more, and nothing from ``f`` on was skipped, so
    the gap ``[s, min(f, l, e))`` is exactly what the batch lost. A gap made only of
    transaction markers lies at or above ``l``, so it never counts. When the offsets
    went back (``e < s``), Spark's source plans an empty range for the partition and the
    next batch starts at ``e``: the new log's ``[l, e)`` is skipped. A partition with
    no start (new in this batch, or the query's first batch) lost nothing.

    >>> loss = offset_loss({("t", 0): 400}, {("t", 0): 1000}, {("t", 0): 550}, {("t", 0): 550})
    >>> loss.lost, loss.reset
    ({('t', 0): 150}, ())
    >>> recreated = offset_loss({("t", 0): 400}, {("t", 0): 250}, {}, {("t", 0): 0})
    >>> recreated.reset, recreated.lost
    ((('t', 0),), {('t', 0): 250})
    >>> offset_loss({("t", 0): 5}, {("t", 0): 9}, {("t", 0): 7}, {("t", 0): 0}).lost  # markers at 5, 6
    {}
    """
    lost: dict[TopicPartitionKey, int] = {}
    reset: list[TopicPartitionKey] = []
    for tp, e in sorted(end.items()):
        s = start.get(tp)
        if s is None:
            continue
        if e < s:
            reset.append(tp)
            skipped = e - earliest.get(tp, e)
            if skipped > 0:
                lost[tp] = skipped
            continue
        gap = min(first_read.get(tp, e), earliest.get(tp, s), e) - s
        if gap > 0:
            lost[tp] = gap
    return OffsetLoss(lost, tuple(reset))


__all__ = [
    "OffsetLoss",
    "Offsets",
    "from_offset",
    "last_checkpointed_end",
    "offset_loss",
    "parse_offset_log_entry",
]
