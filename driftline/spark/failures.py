"""A failed streaming query, turned into a :class:`~driftline.errors.JobError` a user can act on.

Spark's Kafka source stops a query with ``failOnDataLoss`` when records it has not
read are gone: deleted by retention or ``delete_records`` (``COULD_NOT_READ_OFFSET_RANGE``,
``START_OFFSET_RESET``), or a topic deleted and recreated, so offsets went backwards
(``PARTITION_OFFSET_CHANGED``, ``PARTITIONS_DELETED``). Those become a
:class:`~driftline.errors.DataLossError` naming the topic, partition, offsets and
checkpoint, and how to go on. Runs on the driver, after the query stopped.
"""

from __future__ import annotations

import re

from driftline.errors import DataLossError, JobError

_PHRASES = (
    ("Could not read records in offset", "COULD_NOT_READ_OFFSET_RANGE"),
    ("offset was changed from", "PARTITION_OFFSET_CHANGED"),
    ("but consumer reset to", "START_OFFSET_RESET"),
    ("have been deleted", "PARTITIONS_DELETED"),
)
_KIND = re.compile(r"KAFKA_DATA_LOSS\.([A-Z_]+)")
_PARTITION = re.compile(r"(?:partition|Partition|for) (?P<tp>[\w.\-]+-\d+)")
_OFFSETS = re.compile(
    r"offset \[(?P<a>-?\d+), (?P<b>-?\d+)\)"  # COULD_NOT_READ_OFFSET_RANGE
    r"|changed from (?P<c>-?\d+) to (?P<d>-?\d+)"  # PARTITION_OFFSET_CHANGED
    r"|was (?P<e>-?\d+) but consumer reset to (?P<f>-?\d+)"  # START_OFFSET_RESET
)


def query_failure(sources: list[str], exception: object, *, checkpoint: str, topics: list[str],
                  query: str | None = None) -> JobError:  # fmt: skip
    """The error ``driftline run`` reports for a failed streaming query: of one source, or
    of the sources sharing ``query`` (named with them in the message)."""
    text = str(exception)
    if len(sources) == 1:
        who = f"source {sources[0]!r}"
        streaming = f"the streaming query of {who}"
    else:
        listed = ", ".join(repr(s) for s in sources)
        who = f"sources {listed} (query {query!r})"
        streaming = f"the streaming query {query!r} of sources {listed}"
    if "UnknownTopicOrPartitionException" in text:
        named = " or ".join(repr(t) for t in topics)
        return JobError(
            f"{who}: topic {named} does not exist on the broker (or was deleted while the job "
            f"ran); ingest into it first or check [kafka] topic_prefix and the source's topic"
        )
    if "No space left on device" in text:
        return JobError(
            f"{who}: the disk under the warehouse or the checkpoints is full (No space left on "
            f"device; checkpoint {checkpoint}). Free space and run again: the job resumes from its last "
            "committed batch, and the half-written batch is written again"
        )
    kind = _KIND.search(text)
    if kind is None and "Some data may have been lost" not in text:
        first = _python_error(text) or (
            text.strip().splitlines()[0] if text.strip() else type(exception).__name__
        )
        return JobError(f"{streaming} failed: {first[:2000]}")
    where = _PARTITION.search(text)
    offsets = _OFFSETS.search(text)
    partition = where.group("tp") if where else "?"
    span = "offsets unknown"
    if offsets:
        first, second = (g for g in offsets.groups() if g is not None)
        span = f"offsets {first} -> {second}"
    reason = (
        kind.group(1)
        if kind
        else next((name for phrase, name in _PHRASES if phrase in text), "KAFKA_DATA_LOSS")
    )
    return DataLossError(
        f"{who}: records the job had not read are gone from Kafka ({reason}: topic-partition "
        f"{partition}, {span}). The checkpoint {checkpoint} no longer matches topic(s) {', '.join(topics)}: "
        f"the topic was deleted and recreated, or records were removed (retention, delete_records) before "
        f"the job read them. To start afresh remove {checkpoint}; to go on past the lost records set "
        f"[kafka] fail_on_data_loss = false"
    )


def _python_error(text: str) -> str | None:
    """The exception line of the last Python traceback in ``text`` (a failure inside
    ``foreachBatch`` reaches the query as Py4J's "exception raised by the Python Proxy",
    the whole traceback in its message): ``driftline.errors.SchemaError: ...`` becomes
    ``SchemaError: ...``, the part a user can act on."""
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    for line in text[start:].splitlines()[1:]:
        if line and not line[0].isspace():
            name, _, message = line.partition(": ")
            error = f"{name.rsplit('.', 1)[-1]}: {message}".strip().removesuffix(" SQLSTATE: 39000").strip()
            if message.startswith("An error occurred while calling"):  # a Spark call failed in the JVM
                causes = _JAVA_CAUSE.findall(text[start:])
                if causes:
                    error += f" Caused by: {causes[-1].strip()}"
            return error
    return None


# a Java stack trace's causes (Py4JJavaError's message holds the JVM's trace): the last is the root
_JAVA_CAUSE = re.compile(r"^Caused by: (.+)$", re.MULTILINE)
