"""Which topics a checkpoint's offsets belong to: Kafka topic ids kept beside Spark's checkpoint.

Spark's Kafka source checkpoints offsets by topic *name*. A topic deleted and recreated
under the same name (or the same name on a new broker) has a new topic id, the UUID
Kafka assigns when it creates a topic, and its offsets start again at 0. Spark notices
only if the new offsets are below the checkpointed ones; once the new topic has grown
past them, Spark reads on from the old offsets and skips the new records below them
without a word. So at each start, on the driver before the query starts, driftline
compares the topics' ids with those recorded in ``<checkpoint>/driftline-topics.json``
when the checkpoint was first used.

>>> changed_topics({"t": "A", "u": "B"}, {"t": "A", "u": "C", "v": "D"})
{'u': ('B', 'C')}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from driftline.errors import ConfigError, DataLossError
from driftline.spark import fs

logger = logging.getLogger(__name__)
RECORD = "driftline-topics.json"


def changed_topics(recorded: Mapping[str, str], current: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Topics whose id differs from the recorded one: ``{topic: (recorded, current)}``."""
    return {
        t: (recorded[t], current[t]) for t in sorted(current) if recorded.get(t, current[t]) != current[t]
    }


def check_topic_identity(
    spark, source: str, checkpoint: Path | str, current: Mapping[str, str], *, fail_on_data_loss: bool
) -> None:
    """Stop (or, with ``fail_on_data_loss = false``, warn) when a topic is not the one the
    checkpoint was made for, or when the checkpoint holds a topic none of its query's
    sources reads any more (Spark's Kafka source would stop the query as data loss);
    record the ids on first use and after a warned change. The record is read and
    written through Hadoop's FileSystem (driver side, before the query starts)."""
    record = fs.join(str(checkpoint), RECORD)
    text = fs.read_text(spark, record)
    recorded = json.loads(text) if text is not None else {}
    dropped = sorted(set(recorded) - set(current))
    if dropped and fail_on_data_loss:
        raise ConfigError(
            f"source {source!r}: the checkpoint {checkpoint} holds offsets of topic(s) "
            f"{', '.join(repr(t) for t in dropped)}, which none of its query's sources reads now (a source "
            "left the query, or its topic was renamed): Spark's Kafka source stops such a query as data "
            "loss. Put the source back in the query ([sources.<name>] query and topic), or start the query "
            f"afresh: remove {checkpoint} and its sources' results in the warehouse"
        )
    for topic in dropped:
        logger.warning("topic_dropped source=%s topic=%s checkpoint=%s: its checkpointed offsets are no "
                       "longer read (fail_on_data_loss = false)", source, topic, checkpoint)  # fmt: skip
    recorded = {t: i for t, i in recorded.items() if t in current}
    changed = changed_topics(recorded, current)
    if changed and fail_on_data_loss:
        topic, (then, now) = next(iter(changed.items()))
        raise DataLossError(
            f"source {source!r}: topic {topic!r} is not the topic the checkpoint {checkpoint} was made for: "
            f"it was deleted and recreated since (topic id {then} then, {now} now), for example on a new "
            f"broker, so its offsets started again at 0 and the checkpointed ones do not apply. To start "
            f"afresh remove {checkpoint}; to go on from the checkpointed offsets anyway set [kafka] "
            f"fail_on_data_loss = false (the new topic's records below them are then skipped)"
        )
    for topic, (then, now) in changed.items():
        logger.warning(
            "topic_recreated source=%s topic=%s id_then=%s id_now=%s checkpoint=%s: reading on from the "
            "checkpointed offsets (fail_on_data_loss = false); the new topic's records below them are "
            "skipped",
            source, topic, then, now, checkpoint,
        )  # fmt: skip
    if dropped or recorded != {**recorded, **current}:
        fs.write_text(spark, record, json.dumps({**recorded, **current}, sort_keys=True) + "\n")


__all__ = ["RECORD", "changed_topics", "check_topic_identity"]
