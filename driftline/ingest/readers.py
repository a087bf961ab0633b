"""Input readers: JSON Lines, CSV and Parquet, one :class:`InputRecord` per record.

Each record keeps its original bytes (what a dead letter must carry) and its location
in the file. A line that does not parse is still a record, with ``error`` set, so it
is counted and dead-lettered rather than skipped.

* JSON Lines: one object per line; blank lines are not records.
* CSV: first row is the header; the original bytes are the physical lines of the row
  (a quoted field may span lines). A row with a different number of fields than the
  header is ``NOT_PARSEABLE``. Every value is text (the validator parses it).
* Parquet: rows are typed already; Parquet has no per-row bytes, so the original is
  the row as canonical JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError


class InputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


_EXTENSIONS = {
    ".jsonl": InputFormat.JSONL,
    ".ndjson": InputFormat.JSONL,
    ".json": InputFormat.JSONL,
    ".csv": InputFormat.CSV,
    ".parquet": InputFormat.PARQUET,
    ".pq": InputFormat.PARQUET,
}


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One input record: its parsed value, or the parse ``error``; always its bytes."""

    location: str
    raw: bytes
    value: dict[str, Any] | None
    error: str | None = None
    position: int = 0  # bytes (text formats) or rows (Parquet) consumed so far, for progress


def detect_format(path: Path, explicit: str | None = None) -> InputFormat:
    """The input format from ``explicit`` or the file extension."""
    valid = ", ".join(f.value for f in InputFormat)
    if explicit is not None:
        try:
            return InputFormat(explicit.lower())
        except ValueError:
            raise ConfigError(f"--format: {explicit!r} is not supported; valid: {valid}") from None
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"--input: cannot tell the format of {path.name!r} from its extension; "
            f"use .jsonl/.ndjson/.json, .csv or .parquet/.pq, or pass --format ({valid})"
        ) from None


def input_size(path: Path, fmt: InputFormat) -> int:
    """Total for progress: bytes for text formats, rows for Parquet."""
    if fmt is InputFormat.PARQUET:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return path.stat().st_size


def read_records(path: Path, fmt: InputFormat) -> Iterator[InputRecord]:
    if not path.is_file():
        raise ConfigError(f"--input: {path} does not exist or is not a file")
    readers = {InputFormat.JSONL: _jsonl, InputFormat.CSV: _csv, InputFormat.PARQUET: _parquet}
    return readers[fmt](path)


def _jsonl(path: Path) -> Iterator[InputRecord]:
    with open(path, "rb") as handle:
        position = 0
        for number, line in enumerate(handle, start=1):
            position += len(line)
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            location = f"line {number}"
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield InputRecord(location, raw, None, f"not valid JSON: {exc}", position)
                continue
            except RecursionError:
                yield InputRecord(location, raw, None, "not valid JSON: nested too deep to parse", position)
                continue
            except ValueError as exc:  # e.g. an integer literal over Python's 4,300-digit limit
                yield InputRecord(location, raw, None, f"not valid JSON: {exc}", position)
                continue
            if not isinstance(value, dict):
                error = f"expected a JSON object, got {type(value).__name__}"
                yield InputRecord(location, raw, None, error, position)
                continue
            yield InputRecord(location, raw, value, None, position)


class _LineTap:
    """Feeds csv.reader line by line and remembers the lines each row consumed."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self.consumed: list[bytes] = []
        self.position = 0
        self.line_number = 0

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = self._handle.readline()
        if not line:
            raise StopIteration
        self.position += len(line)
        self.line_number += 1
        self.consumed.append(line)
        return line.decode("utf-8", errors="surrogateescape")


def _csv(path: Path) -> Iterator[InputRecord]:
    with open(path, "rb") as handle:
        tap = _LineTap(handle)
        rows = csv.reader(tap)
        try:
            header = next(rows)
        except StopIteration:
            return
        while True:
            tap.consumed.clear()
            first_line = tap.line_number + 1
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                raw = b"".join(tap.consumed).rstrip(b"\r\n")
                yield InputRecord(f"line {first_line}", raw, None, f"bad CSV: {exc}", tap.position)
                continue
            raw = b"".join(tap.consumed).rstrip(b"\r\n")
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            location = f"line {first_line}"
            if len(row) != len(header):
                error = f"{len(row)} fields where the header has {len(header)}"
                yield InputRecord(location, raw, None, error, tap.position)
                continue
            yield InputRecord(location, raw, dict(zip(header, row, strict=True)), None, tap.position)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _parquet(path: Path) -> Iterator[InputRecord]:
    import pyarrow.parquet as pq

    row_number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for value in batch.to_pylist():
            row_number += 1
            raw = json.dumps(value, default=_json_default, sort_keys=True).encode()
            yield InputRecord(f"row {row_number}", raw, value, None, row_number)
