"""Kafka offsets as Spark's Kafka source checkpoints them: ``{topic: {"partition": offset}}``.

>>> from_offset({"t": {"1": 7, "0": 3}})
{('t', 1): 7, ('t', 0): 3}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

Offsets = dict[str, dict[str, int]]


def from_offset(offset: Mapping[str, Mapping[str, int]] | None) -> dict[tuple[str, int], int]:
    return {(topic, int(p)): int(o) for topic, parts in (offset or {}).items() for p, o in parts.items()}


def last_checkpointed_end(checkpoint: str | Path | None) -> Offsets | None:
    """The end offset of the newest batch in a query's checkpoint, if there is one.

    Spark's offset log is ``<checkpoint>/offsets/<batchId>``: a version line, a JSON
    metadata line, then one line per source with that source's offset JSON. This is
    where the query stands after a restart, before its first progress event (the lag
    monitor's starting point).
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
