"""Schema drift in the job: events per batch and per closed window, ``schema_events``.

What the events mean is in :mod:`driftline.quality.schema_drift`; this module feeds it
what the batch already has, so it adds no Spark action of its own:

- writer schema ids: the decoder's survey (:meth:`driftline.spark.decode.FrameDecoder.survey`,
  the one aggregation that materialises the batch's decode) counts the records per
  schema id and partition; the ids met before come from the previous state version's
  commit record, and the ids met after go into this batch's;
- all-null fields and unseen categories: when a window closes, the state version of
  the batch holds its rows, its nulls per nullable field (the ``nulls`` partials) and
  its counts per categorical value; the reference profile gives each categorical's
  vocabulary (closed ones only) and which fields had values.

Rows go to ``schema_events`` (``source=<s>/batch_id=<n>``, like ``drift_scores``;
replaced when a batch is replayed, which finds the same previous commit and closes the
same windows, so it writes the same events). Runs on the driver inside
``foreachBatch``, after the batch's state version is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession

from driftline.quality.schema_drift import (
    IdRange,
    SchemaEvent,
    SchemaEventKind,
    all_null_fields,
    new_writer_schemas,
    unseen_categories,
)
from driftline.spark import feature_stats
from driftline.spark.tables import Warehouse, as_utc
from driftline.spark.window_state import StateVersion, window_offset_ranges

logger = logging.getLogger(__name__)

_TIME = pa.timestamp("us", tz="UTC")
SCHEMA_EVENTS_SCHEMA = pa.schema([
    ("kind", pa.string()), ("field", pa.string()), ("schema_id", pa.int64()), ("registered", pa.bool_()),
    ("window_start", _TIME), ("window_end", _TIME), ("count", pa.int64()), ("share", pa.float64()),
    ("values", pa.list_(pa.string())), ("detail", pa.string()),
    ("offset_ranges", feature_stats.SCHEMA.field("offset_ranges").type), ("pipeline", pa.string()),
])  # fmt: skip
# ``source`` and ``batch_id`` are the partition folders


@dataclass(frozen=True)
class SchemaWatch:
    """What one source's schema drift is judged against, fixed when its query starts."""

    pipeline: str
    source: str
    warehouse: Warehouse
    reader_id: int | None  # the reader schema's id; None: the batches come decoded (no ids)
    nullable_fields: tuple[str, ...] = ()  # the reader schema's nullable fields but the event time
    # categorical feature -> its reference vocabulary, for features whose vocabulary is complete
    vocabularies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the features the reference saw a non-null value of
    reference_has_values: frozenset[str] = frozenset()

    @classmethod
    def for_source(cls, pipeline, source, warehouse, reader, nullable_fields, reference) -> SchemaWatch:
        """From the reader schema (``RegisteredSchema`` or None) and the reference profile (or None)."""
        vocabularies, has_values = {}, set()
        for name, profile in reference.features.items() if reference is not None else ():
            if int(profile.counts[:-1].sum()) > 0:  # every slot but the null one
                has_values.add(name)
            vocabulary = getattr(profile.binning, "vocabulary", None)
            if vocabulary is not None and int(profile.counts[-2]) == 0:  # nothing in the OOV slot
                vocabularies[name] = tuple(vocabulary)
        return cls(pipeline, source, warehouse, None if reader is None else reader.schema_id,
                   tuple(nullable_fields), vocabularies, frozenset(has_values))  # fmt: skip

    def series(self) -> list[tuple[str, str]]:
        """The (kind, field) pairs this watch can report, for the metric's series."""
        return (
            [(SchemaEventKind.NEW_WRITER_SCHEMA.value, "")] * (self.reader_id is not None)
            + [(SchemaEventKind.FIELD_ALL_NULL.value, f) for f in self.nullable_fields]
            + [(SchemaEventKind.UNSEEN_CATEGORIES.value, f) for f in sorted(self.vocabularies)]
        )

    def batch_events(
        self, seen: Iterable[int] | None, ranges: Iterable[IdRange], registered: Iterable[int]
    ) -> tuple[list[SchemaEvent], tuple[int, ...] | None]:
        """Writer schema ids met for the first time in this batch, and the ids met after it."""
        if self.reader_id is None:
            return [], None if seen is None else tuple(seen)
        return new_writer_schemas(seen, self.reader_id, ranges, registered)

    def window_events(
        self, closed: Sequence[tuple[datetime, datetime]], state: StateVersion, had_values: Iterable[str] = ()
    ) -> tuple[list[SchemaEvent], tuple[str, ...]]:
        """All-null fields and unseen categories of the ``closed`` windows, from ``state``
        (the batch's own version, which still holds them), oldest window first; and the
        nullable fields seen with a value so far: ``had_values`` (those of earlier
        windows, kept in the commit record) and those of these windows."""
        seen = set(had_values)
        if not closed:
            return [], tuple(sorted(seen))
        starts = [pd.Timestamp(start) for start, _ in closed]

        def of_closed(kind: str) -> pd.DataFrame | None:
            frame = state.frame(kind)
            return None if frame is None or frame.empty else frame[frame["window_start"].isin(starts)]

        windows, nulls, categorical = of_closed("windows"), of_closed("nulls"), of_closed("categorical")
        rows = pd.Series(dtype="int64") if windows is None else windows.groupby("window_start")["rows"].sum()
        ranges = window_offset_ranges(state, [start for start, _ in closed])
        events: list[SchemaEvent] = []
        for start, end in sorted(closed):
            key = pd.Timestamp(start)
            window_rows = int(rows.get(key, 0))
            where = ranges.get(as_utc(start), [])
            if nulls is not None and self.nullable_fields:
                mine = nulls[nulls["window_start"] == key]
                counts = {f: int(c) for f, c in zip(mine["field"], mine["count"], strict=True)}
                events += all_null_fields(as_utc(start), as_utc(end), window_rows, counts,
                                          seen | self.reference_has_values, where)  # fmt: skip
                seen |= {f for f, n in counts.items() if n < window_rows}
            if categorical is not None:
                mine = categorical[categorical["window_start"] == key]
                for feature, group in mine.groupby("feature", sort=True):
                    if feature not in self.vocabularies:
                        continue
                    pairs = zip(group["value"], group["count"], strict=True)
                    values = {None if pd.isna(v) else v: int(c) for v, c in pairs}
                    event = unseen_categories(as_utc(start), as_utc(end), feature, values,
                                              self.vocabularies[feature], where)  # fmt: skip
                    if event is not None:
                        events.append(event)
        return events, tuple(sorted(seen))

    def write(self, spark: SparkSession, batch_id: int, events: Sequence[SchemaEvent]) -> list[dict]:
        """The events as this batch's ``schema_events`` rows (nothing without any, and
        nothing again on a replay of a batch whose rows are committed)."""
        rows = [{**e.as_row(), "pipeline": self.pipeline} for e in events]
        if rows:
            self.warehouse.append_batch(
                spark, "schema_events", self.source, batch_id, rows, SCHEMA_EVENTS_SCHEMA
            )
            for e in events:
                logger.warning("schema_event source=%s batch=%d kind=%s field=%s schema_id=%s %s",
                               self.source, batch_id, e.kind, e.field, e.schema_id, e.detail)  # fmt: skip
        return rows


__all__ = ["SCHEMA_EVENTS_SCHEMA", "SchemaWatch"]
