"""Schema drift seen in the stream: what changed in the shape of a source's data.

Distribution drift asks whether a feature's values moved; schema drift asks whether
the data still has the shape the pipeline was built for. Three events, each a row of
the ``schema_events`` table (:mod:`driftline.spark.schema_events`):

``new_writer_schema``
    Records framed with a writer schema id this source's job has not met before. The
    registered ids met so far are kept with the job's state; before the first batch the
    only id known is the reader schema's (the version the pipeline names), so an old
    producer still writing v1 or a new one writing v3 is an event, once, with how many
    records and where (topic, partition, first and last offset). An id the registry
    lacks (``registered`` false: its records are ``UNKNOWN_SCHEMA`` dead letters) is an
    event in every batch that has it (the running job looks it up once; register it,
    restart the job, then ``driftline dlq replay``): it is not remembered, so garbage
    naming random ids cannot grow the state, and the alert stays on while records are
    being refused. A batch reports at
    most :data:`MAX_ID_EVENTS` new ids one by one (the most frequent); the rest are
    summed in one event without a ``schema_id``.
``field_all_null``
    A closed window in which every valid row has a null in a field that is known to
    carry values: the reference profiles it with values, or an earlier closed window
    of the stream had a value in it (the fields seen with values are kept with the
    job's state). This is what a renamed or dropped producer field looks like through
    schema resolution: the reader fills its default, null, in every row. An optional
    field nobody ever filled is no event. One event per window while it lasts, so the
    table shows since when.
``unseen_categories``
    A closed window in which a categorical feature takes values outside the reference
    vocabulary: the values (most frequent first, at most :data:`MAX_LISTED`), how many
    rows and their share of the window's non-null rows. Only a closed vocabulary can
    be left: a reference profile that kept its ``max_categories`` most frequent values
    and put the rest in its out-of-vocabulary slot has no complete list, so such a
    feature is not checked (its OOV share still moves PSI and chi-square).

Pure: no Spark. The job hands these functions per-batch schema-id counts and the
closed windows' counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

MAX_LISTED = 20  # unseen values listed per event, most frequent first
MAX_ID_EVENTS = 20  # new writer schema ids reported one by one per batch; the rest in one event


class SchemaEventKind(StrEnum):
    NEW_WRITER_SCHEMA = "new_writer_schema"
    FIELD_ALL_NULL = "field_all_null"
    UNSEEN_CATEGORIES = "unseen_categories"


@dataclass(frozen=True)
class IdRange:
    """Records of one writer schema id in one topic partition of a batch."""

    schema_id: int
    topic: str
    partition: int
    count: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True)
class SchemaEvent:
    """One row of ``schema_events``; ``window_start``/``window_end`` are None for a
    batch-level event (a writer schema id), ``field`` for a schema id event too."""

    kind: SchemaEventKind
    detail: str
    field: str | None = None
    schema_id: int | None = None
    registered: bool | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    count: int = 0  # records with the new id, rows of the window, rows with unseen values
    share: float | None = None  # all-null: 1.0; unseen: their share of the non-null rows
    values: tuple[str, ...] = ()
    offset_ranges: tuple[Mapping[str, Any], ...] = ()

    def as_row(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind), "field": self.field, "schema_id": self.schema_id,
            "registered": self.registered, "window_start": self.window_start, "window_end": self.window_end,
            "count": self.count, "share": self.share, "values": list(self.values) or None,
            "detail": self.detail, "offset_ranges": [dict(r) for r in self.offset_ranges] or None,
        }  # fmt: skip


def new_writer_schemas(
    seen: Iterable[int] | None, reader_id: int, ranges: Iterable[IdRange], registered: Iterable[int]
) -> tuple[list[SchemaEvent], tuple[int, ...]]:
    """Events for the schema ids in ``ranges`` (a batch's records per id and partition)
    that are not in ``seen`` (``None``: nothing seen yet, only ``reader_id`` is known),
    and the ids known after the batch, sorted: ``seen`` and this batch's ids that are
    ``registered`` (ids the registry knows)."""
    known = set(seen) if seen is not None else {reader_id}
    known_to_registry = set(registered)
    by_id: dict[int, list[IdRange]] = {}
    for r in ranges:
        by_id.setdefault(r.schema_id, []).append(r)
    events = []
    new = sorted(set(by_id) - known)
    if len(new) > MAX_ID_EVENTS:  # garbage naming many ids: the most frequent one by one, the rest summed
        by_count = sorted(new, key=lambda i: (-sum(r.count for r in by_id[i]), i))
        new, rest = sorted(by_count[:MAX_ID_EVENTS]), by_count[MAX_ID_EVENTS:]
        records = sum(r.count for i in rest for r in by_id[i])
        detail = (f"{records} record(s) with {len(rest)} more schema ids first met by this job (the "
                  f"{MAX_ID_EVENTS} most frequent are reported one by one)")  # fmt: skip
        registered_rest = all(i in known_to_registry for i in rest)
        events.append(SchemaEvent(SchemaEventKind.NEW_WRITER_SCHEMA, detail, registered=registered_rest,
                                  count=records))  # fmt: skip
    for schema_id in new:
        parts = sorted(by_id[schema_id], key=lambda r: (r.topic, r.partition))
        count = sum(r.count for r in parts)
        in_registry = schema_id in known_to_registry
        where = ", ".join(f"{r.topic}/{r.partition}@{r.first_offset}" for r in parts)
        detail = (
            f"{count} record(s) written with schema id {schema_id}, first met by this job (reader schema "
            f"id {reader_id}); first at {where}"
        )
        if not in_registry:
            detail += "; the registry has no such id, so they are UNKNOWN_SCHEMA dead letters"
        ranges_out = tuple(
            {"topic": r.topic, "partition": r.partition, "first_offset": r.first_offset,
             "last_offset": r.last_offset} for r in parts
        )  # fmt: skip
        events.append(SchemaEvent(SchemaEventKind.NEW_WRITER_SCHEMA, detail, schema_id=schema_id,
                                  registered=in_registry, count=count, offset_ranges=ranges_out))  # fmt: skip
    return sorted(events, key=lambda e: (e.schema_id is None, e.schema_id or 0)), tuple(
        sorted(known | (set(by_id) & known_to_registry))
    )


def all_null_fields(
    start: datetime,
    end: datetime,
    rows: int,
    nulls: Mapping[str, int],
    had_values: Collection[str],
    offset_ranges: Sequence[Mapping[str, Any]] = (),
) -> list[SchemaEvent]:
    """``field_all_null`` events of one closed window of ``rows`` valid rows, from the
    window's null count per field: the fields null in every row that are in
    ``had_values`` (the reference's fields with values and the fields an earlier window
    had a value in)."""
    if rows <= 0:
        return []
    events = []
    for name in sorted(nulls):
        if nulls[name] < rows or name not in had_values:
            continue
        detail = f"every one of the window's {rows} valid rows has {name} null"
        events.append(SchemaEvent(SchemaEventKind.FIELD_ALL_NULL, detail, field=name, window_start=start,
                                  window_end=end, count=rows, share=1.0,
                                  offset_ranges=tuple(offset_ranges)))  # fmt: skip
    return events


def unseen_categories(
    start: datetime,
    end: datetime,
    feature: str,
    counts: Mapping[str | None, int],
    vocabulary: Iterable[str],
    offset_ranges: Sequence[Mapping[str, Any]] = (),
) -> SchemaEvent | None:
    """The ``unseen_categories`` event of one closed window and categorical ``feature``
    from its counts per value (``None``: null), or None when every non-null value is in
    ``vocabulary``."""
    known = set(vocabulary)
    present = {v: int(c) for v, c in counts.items() if v is not None and c > 0}
    unseen = sorted(((v, c) for v, c in present.items() if v not in known), key=lambda vc: (-vc[1], vc[0]))
    if not unseen:
        return None
    count, non_null = sum(c for _, c in unseen), sum(present.values())
    listed = tuple(v for v, _ in unseen[:MAX_LISTED])
    more = f" and {len(unseen) - MAX_LISTED} more" if len(unseen) > MAX_LISTED else ""
    detail = (
        f"{count} of {non_null} non-null rows ({count / non_null:.1%}) have {feature} outside the reference "
        f"vocabulary: {', '.join(listed)}{more}"
    )
    return SchemaEvent(SchemaEventKind.UNSEEN_CATEGORIES, detail, field=feature, window_start=start,
                       window_end=end, count=count, share=count / non_null, values=listed,
                       offset_ranges=tuple(offset_ranges))  # fmt: skip


__all__ = [
    "MAX_LISTED",
    "IdRange",
    "SchemaEvent",
    "SchemaEventKind",
    "all_null_fields",
    "new_writer_schemas",
    "unseen_categories",
]
