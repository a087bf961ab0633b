"""Write generated records as JSON Lines, CSV or Parquet, corrupt ones included."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from driftline.demo.generator import GeneratedRecord, iso_millis
from driftline.errors import ConfigError
from driftline.ingest.readers import InputFormat, detect_format

_FLATTEN = str.maketrans({",": ";", '"': "'", "\n": " "})

#: Corruptions a Parquet file can hold (typed columns cannot carry text in a number).
PARQUET_CORRUPTIONS = ("missing_field",)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_millis(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_records(
    path: Path | str,
    records: Sequence[GeneratedRecord],
    field_names: Sequence[str],
    input_format: str | None = None,
) -> Path:
    """Write ``records`` to ``path`` in the format its extension (or ``input_format``) names."""
    path = Path(path)
    fmt = detect_format(path, input_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt is InputFormat.JSONL:
        with open(path, "w") as out:
            for record in records:
                if record.text is not None:
                    out.write(record.text + "\n")
                else:
                    value = {
                        k: iso_millis(v) if isinstance(v, datetime) else v for k, v in record.value.items()
                    }
                    out.write(json.dumps(value) + "\n")
    elif fmt is InputFormat.CSV:
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(field_names)
            for record in records:
                if record.text is not None:
                    # no commas or quotes: the damaged row must stay one physical line
                    out.write(record.text.translate(_FLATTEN) + "\n")
                else:
                    writer.writerow([_cell(record.value.get(name)) for name in field_names])
    else:
        _write_parquet(path, records, field_names)
    return path


def _write_parquet(path: Path, records: Sequence[GeneratedRecord], field_names: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    unsupported = sorted({r.kind for r in records} - {"valid", "late", *PARQUET_CORRUPTIONS})
    if unsupported:
        raise ConfigError(
            f"Parquet cannot hold corrupt records of kind {unsupported}; for Parquet use "
            f"{', '.join(PARQUET_CORRUPTIONS)}, or write JSON Lines / CSV"
        )
    columns = {name: [r.value.get(name) for r in records] for name in field_names}
    table = pa.table(
        {
            name: pa.array(values, type=pa.timestamp("ms", tz="UTC")) if name == "event_time" else values
            for name, values in columns.items()
        }
    )
    pq.write_table(table, path)
