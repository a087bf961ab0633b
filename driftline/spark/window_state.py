"""The open windows' state of one source: versioned, one version per micro-batch.

Layout under ``<warehouse>/_state/open/<source>/``::

    <N>/numeric.parquet       combined numeric partials per (window, feature)
    <N>/categorical.parquet   one count per (window, feature, value)
    <N>/windows.parquet       rows and offsets per (window, topic, partition)
    <N>/bins.parquet          reference-grid counts per (window, feature, bin)
    <N>/dead.parquet          dead letters per (window, reason), for the circuit breaker
    <N>/nulls.parquet         nulls per (window, nullable field), for schema drift
    <N>/_commit.json          {"batch_id", "watermark", "max_event_time", "policy", "windows", "totals",
                               "schema_ids", "fields_with_values"}

The partials are small (one row per open window and feature, value or grid slot), so
they live on the driver as pandas frames: batch N reads version P (the newest committed
one below N, normally N-1), keeping only windows that end after P's watermark, adds
the batch's own partials (which Spark computed and the driver collected in one
action), combines them (:mod:`driftline.stats.partials`) and writes version N, one
Parquet file per kind (:mod:`driftline.spark.arrow_files`, no Spark job); ``_commit.json`` is written
last and makes the version count. The watermark is a running value in the commit
record, ``watermark_N = max(watermark_P, newest valid event time of N - delay)``,
never a scan of history, and so is the list of the version's windows, so a batch
knows which windows it closes without reading the partials, and so are the job's
running totals (records read, valid, dead-lettered by reason, late, lost; batches),
which the run summary reads instead of every batch's progress row, and so are the
writer schema ids met so far and the fields seen with values
(:mod:`driftline.quality.schema_drift`). A version holds the
windows open before N plus those N closed (they are scored from it); the next batch
drops the latter when it reads.
So a batch reads O(open windows) rows whatever the job's uptime.

A replay of batch N (Spark runs it again after a failure before its commit) finds
version N-1 still there and writes the same version N. After a commit everything
older than N-1 is deleted, so the disk holds at most :data:`RETAINED` versions.

All of it runs on the driver inside ``foreachBatch``; the reads and writes go through
Hadoop FileSystem paths (:mod:`driftline.spark.fs`), never local files. A version
written before this layout (a folder of Spark ``part-*`` files per kind) is read too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from driftline import faults
from driftline.spark import arrow_files, fs
from driftline.stats import partials

logger = logging.getLogger(__name__)

KINDS = ("numeric", "categorical", "windows", "bins", "dead", "nulls")
COMMIT = "_commit.json"
RETAINED = 2  # the newest version and the one before it, which a replay of the newest reads

_TIME = pa.timestamp("us", tz="UTC")
_KEY_FIELDS = [("source", pa.string()), ("window_start", _TIME), ("window_end", _TIME)]
SCHEMAS = {
    "numeric": pa.schema([*_KEY_FIELDS, ("feature", pa.string()), ("rows", pa.int64()), ("nulls", pa.int64()),
                          ("n", pa.int64()), ("mean", pa.float64()), ("m2", pa.float64()),
                          ("min", pa.float64()), ("max", pa.float64()), ("sketch", pa.binary())]),
    "categorical": pa.schema([*_KEY_FIELDS, ("feature", pa.string()), ("value", pa.string()),
                              ("count", pa.int64())]),
    "bins": pa.schema([*_KEY_FIELDS, ("feature", pa.string()), ("bin", pa.int32()), ("count", pa.int64())]),
    "windows": pa.schema([*_KEY_FIELDS, ("_topic", pa.string()), ("_partition", pa.int32()),
                          ("rows", pa.int64()), ("first_offset", pa.int64()), ("last_offset", pa.int64())]),
    "dead": pa.schema([*_KEY_FIELDS, ("reason", pa.string()), ("count", pa.int64())]),
    "nulls": pa.schema([*_KEY_FIELDS, ("field", pa.string()), ("count", pa.int64())]),
}  # fmt: skip


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def to_pandas(table: pa.Table, kind: str) -> pd.DataFrame:
    """A kind's partials as pandas with its columns and types (timestamps aware UTC; a
    column an older version wrote and nothing reads, such as ``windows``' ``_batch``, is
    left out, so such a version still combines)."""
    return arrow_files.conform(table, SCHEMAS[kind]).to_pandas()


def collect(frames: dict[str, DataFrame]) -> dict[str, pa.Table]:
    """Small per-batch aggregates of several shapes (``frames``, by name), collected to
    the driver in one Spark action: one union, returned as Arrow and split by name again
    (each table with only its own frame's columns). Runs on the driver, per batch; the
    aggregations run in the executors and only their rows (per window and feature,
    value or grid slot, never per record) travel."""
    union = None
    for name, frame in frames.items():
        tagged = frame.withColumn("_kind", F.lit(name))
        union = tagged if union is None else union.unionByName(tagged, allowMissingColumns=True)
    if union is None:
        return {}
    table = union.toArrow()
    kinds = table["_kind"]
    return {name: table.filter(pc.equal(kinds, name)).select(frames[name].columns) for name in frames}


def to_arrow(frame: pd.DataFrame, kind: str) -> pa.Table:
    return pa.Table.from_pandas(frame[partials.COLUMNS[kind]], schema=SCHEMAS[kind], preserve_index=False)


@dataclass(frozen=True)
class Commit:
    """What a committed version records besides its partials."""

    batch_id: int
    watermark: datetime | None = None  # aware UTC
    max_event_time: datetime | None = None  # newest valid event time so far, aware UTC
    policy: dict[str, Any] | None = None  # the alert policy's state (PolicyState.to_dict())
    # the version's windows, (start, end) aware UTC; None in commits written before they were listed
    windows: tuple[tuple[datetime, datetime], ...] | None = None
    # running totals of every batch so far (driftline.spark.totals); None in older commits
    totals: dict[str, Any] | None = None
    # writer schema ids this source's job has met (schema drift); None: none yet, or an older commit
    schema_ids: tuple[int, ...] | None = None
    # nullable fields a closed window had a value in (schema drift: only those can turn all-null)
    fields_with_values: tuple[str, ...] | None = None

    def to_json(self) -> str:
        return json.dumps({
            "batch_id": self.batch_id,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "policy": self.policy,
            "windows": None if self.windows is None else [[a.isoformat(), b.isoformat()]
                                                          for a, b in self.windows],
            "totals": self.totals,
            "schema_ids": None if self.schema_ids is None else list(self.schema_ids),
            "fields_with_values": None if self.fields_with_values is None else list(self.fields_with_values),
        }, sort_keys=True) + "\n"  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Commit:
        data = json.loads(text)
        windows = data.get("windows")
        if windows is not None:
            windows = tuple((_moment(start), _moment(end)) for start, end in windows)
        ids, fields = data.get("schema_ids"), data.get("fields_with_values")
        return cls(data["batch_id"], _moment(data.get("watermark")), _moment(data.get("max_event_time")),
                   data.get("policy"), windows, data.get("totals"), None if ids is None else tuple(ids),
                   None if fields is None else tuple(fields))  # fmt: skip


@dataclass
class StateVersion:
    """One version's partials as pandas frames (read on first use; ``None`` for a kind
    never written)."""

    spark: SparkSession
    path: str | None  # None: no version (the first batch)
    commit: Commit | None
    files_read: int = 0  # files this version's frames read, counted as they are opened
    _frames: dict[str, pd.DataFrame | None] = field(default_factory=dict)

    def frame(self, kind: str) -> pd.DataFrame | None:
        if kind not in self._frames:
            self._frames[kind] = self._read(kind)
        return self._frames[kind]

    def _read(self, kind: str) -> pd.DataFrame | None:
        if self.path is None:
            return None
        table = arrow_files.read_file(self.spark, fs.join(self.path, f"{kind}.parquet"))
        files = int(table is not None)
        if table is None:  # a version written by Spark before (a folder of part files)
            folder = fs.join(self.path, kind)
            if fs.exists(self.spark, fs.join(folder, "_SUCCESS")):
                table, files = arrow_files.read_folder(self.spark, folder)
        self.files_read += files
        return None if table is None else to_pandas(table, kind)


def window_offset_ranges(state: StateVersion, starts) -> dict[datetime, list[dict]]:
    """Per window start among ``starts`` (aware UTC): the offset ranges of its rows, from
    ``state``'s ``windows`` partials: a closed window's (scores, alerts, schema events) or
    an open one's so far (an early alert)."""
    known = state.frame("windows")
    if known is None:
        return {}
    ranges = partials.offset_ranges(known[known["window_start"].isin([pd.Timestamp(s) for s in starts])])
    return {start.to_pydatetime(): parts for (_, start, _), parts in ranges.items()}


class WindowState:
    """Versioned open-window state of one source (see the module docstring)."""

    def __init__(self, spark: SparkSession, root: str, source: str) -> None:
        self.spark = spark
        self.base = fs.join(root, "_state", "open", source)
        self.source = source

    def _versions(self) -> list[int]:
        return sorted(int(name) for name in fs.list_names(self.spark, self.base) if name.isdigit())

    def _commit(self, version: int) -> Commit | None:
        text = fs.read_text(self.spark, fs.join(self.base, str(version), COMMIT))
        return Commit.from_json(text) if text is not None else None

    def version(self, version: int) -> StateVersion:
        return StateVersion(self.spark, fs.join(self.base, str(version)), self._commit(version))

    def _newest_commit(self, below: int | None = None) -> Commit | None:
        """The record of the newest committed version (below ``below``, when given)."""
        for version in reversed(self._versions()):
            if below is not None and version >= below:
                continue
            if (commit := self._commit(version)) is not None:
                return commit
        return None

    def previous(self, batch_id: int) -> StateVersion:
        """The newest committed version below ``batch_id``, its windows that the watermark
        had already passed left out (they were final in that batch)."""
        commit = self._newest_commit(below=batch_id)
        if commit is None:
            return StateVersion(self.spark, None, None)
        return _open_only(StateVersion(self.spark, fs.join(self.base, str(commit.batch_id)), commit))

    def latest_commit(self) -> Commit | None:
        """The newest committed version's record (at query start, to restore gauges)."""
        return self._newest_commit()

    def advance(self, batch_id: int, previous: StateVersion, parts: dict[str, pd.DataFrame]) -> StateVersion:
        """Write version ``batch_id``: per kind, this batch's partials (``parts[kind]``)
        and ``previous``'s, combined per key (:func:`driftline.stats.partials.combine`).
        Returns the new version, its frames in memory (its commit is not written yet)."""
        self.clear(batch_id)  # what an interrupted attempt of this batch left
        current = StateVersion(self.spark, fs.join(self.base, str(batch_id)), None)
        for kind, frame in parts.items():
            earlier = previous.frame(kind)
            both = (
                frame if earlier is None or earlier.empty else pd.concat([earlier, frame], ignore_index=True)
            )
            combined = partials.combine(kind, both)
            arrow_files.write_file(self.spark, self.path(batch_id, kind), to_arrow(combined, kind))
            faults.point("state_write", batch_id)
            current._frames[kind] = combined
        return current

    def path(self, batch_id: int, kind: str) -> str:
        return fs.join(self.base, str(batch_id), f"{kind}.parquet")

    def clear(self, batch_id: int) -> None:
        """Remove what an interrupted earlier attempt of ``batch_id`` left (replays)."""
        fs.delete(self.spark, fs.join(self.base, str(batch_id)))

    def commit(self, commit: Commit) -> None:
        """Make version ``commit.batch_id`` count, then prune what no replay can need."""
        fs.write_text(self.spark, fs.join(self.base, str(commit.batch_id), COMMIT), commit.to_json())
        for version in self._versions():
            if version < commit.batch_id - (RETAINED - 1):
                fs.delete(self.spark, fs.join(self.base, str(version)))


def open_windows(state: StateVersion, watermark: datetime | None) -> set[tuple[datetime, datetime]]:
    """The windows of ``state`` that end after ``watermark``, (start, end) aware UTC: from
    its commit record, or (a commit written before records listed them) from its
    ``windows`` partials, one small Spark action."""
    if state.commit is None:
        return set()
    if state.commit.windows is not None:
        known = set(state.commit.windows)
    else:
        frame = state.frame("windows")
        rows = (
            [] if frame is None else frame[["window_start", "window_end"]].drop_duplicates().itertuples(False)
        )
        known = {(start.to_pydatetime(), end.to_pydatetime()) for start, end in rows}
    return {w for w in known if watermark is None or w[1] > watermark}


def _open_only(state: StateVersion) -> StateVersion:
    """``state`` with only the windows ending after its watermark."""
    watermark = state.commit.watermark if state.commit else None
    if watermark is None:
        return state
    for kind in KINDS:
        frame = state.frame(kind)
        state._frames[kind] = None if frame is None else frame[frame["window_end"] > watermark]
    return state
