"""Kafka offsets as the streaming source's offset dicts, and how a batch is split.

An offset is ``{topic: {partition: next_offset}}`` with the partition as a *string*:
Spark checkpoints offsets as JSON and compares them as text, so they are always
emitted with sorted keys (otherwise identical offsets can look different and Spark
plans empty batches forever).

>>> to_offset({("t", 1): 7, ("t", 0): 3})
{'t': {'0': 3, '1': 7}}
>>> ranges = plan_ranges({"t": {"0": 0}}, {"t": {"0": 100, "1": 10}}, min_splits=2)
>>> [(r.partition, r.start, r.end) for r in ranges]
[(0, 0, 50), (0, 50, 100), (1, 0, 10)]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

Offsets = dict[str, dict[str, int]]


@dataclass(frozen=True)
class OffsetRange:
    """Records ``start`` (inclusive) to ``end`` (exclusive) of one topic-partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def to_offset(positions: Mapping[tuple[str, int], int]) -> Offsets:
    """``{(topic, partition): offset}`` -> the sorted JSON-shaped offset dict."""
    out: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(positions.items()):
        out.setdefault(topic, {})[str(partition)] = int(offset)
    return {
        topic: dict(sorted(parts.items(), key=lambda kv: int(kv[0]))) for topic, parts in sorted(out.items())
    }


def from_offset(offset: Mapping[str, Mapping[str, int]] | None) -> dict[tuple[str, int], int]:
    return {(topic, int(p)): int(o) for topic, parts in (offset or {}).items() for p, o in parts.items()}


def plan_ranges(
    start: Offsets, end: Offsets, *, min_splits: int = 2, max_split: int = 500_000
) -> list[OffsetRange]:
    """Split ``start..end`` into ranges: at least ``min_splits`` when there is work,
    none larger than ``max_split``. A partition missing from ``start`` starts at 0
    (a partition that appeared since the last batch is read from its beginning)."""
    begin, finish = from_offset(start), from_offset(end)
    spans = [(tp, begin.get(tp, 0), stop) for tp, stop in sorted(finish.items()) if stop > begin.get(tp, 0)]
    total = sum(stop - first for _, first, stop in spans)
    if total == 0:
        return []
    target = max(1, min(max_split, math.ceil(total / max(1, min_splits))))
    ranges = []
    for (topic, partition), first, stop in spans:
        pieces = math.ceil((stop - first) / target)
        step = math.ceil((stop - first) / pieces)
        for lo in range(first, stop, step):
            ranges.append(OffsetRange(topic, partition, lo, min(stop, lo + step)))
    return ranges


def cap_offsets(start: Offsets, latest: Offsets, limit: int | None) -> Offsets:
    """At most ``limit`` records past ``start``, shared in proportion to each partition's lag.

    Never returns less than ``start`` for any partition (offsets must not go back).

    >>> cap_offsets({"t": {"0": 0, "1": 0}}, {"t": {"0": 300, "1": 100}}, 100)
    {'t': {'0': 75, '1': 25}}
    """
    begin, newest = from_offset(start), from_offset(latest)
    lag = {tp: max(0, newest[tp] - begin.get(tp, 0)) for tp in newest}
    total = sum(lag.values())
    if limit is None or total <= limit:
        return to_offset({tp: max(newest[tp], begin.get(tp, 0)) for tp in newest})
    capped = {tp: begin.get(tp, 0) + math.floor(limit * n / total) for tp, n in lag.items()}
    if sum(capped[tp] - begin.get(tp, 0) for tp in capped) == 0:  # tiny limit: give it to the first
        tp = next(tp for tp, n in lag.items() if n)
        capped[tp] += 1
    for tp, offset in begin.items():  # partitions gone from metadata keep their position
        capped.setdefault(tp, offset)
    return to_offset(capped)


def last_checkpointed_end(checkpoint: str | Path | None) -> Offsets | None:
    """The end offset of the newest batch in a query's checkpoint, if there is one.

    Spark's offset log is ``<checkpoint>/offsets/<batchId>``: a version line, a JSON
    metadata line, then one line per source with that source's offset JSON. This is
    the start of the next batch, which the reader needs to cap it after a restart
    (Spark 4.1 gives Python sources no read-limit hook).
    """
    if not checkpoint:
        return None
    folder = Path(str(checkpoint).removeprefix("file:")) / "offsets"
    batches = sorted((int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit()), reverse=True)
    for batch in batches:
        lines = (folder / str(batch)).read_text().splitlines()
        if len(lines) >= 3 and lines[2].strip() not in ("", "-"):
            return json.loads(lines[2])
    return None
