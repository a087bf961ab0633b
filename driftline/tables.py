"""Reading a quality table without Spark: its Delta snapshot as pandas, via ``deltalake``.

The quality tables are Delta Lake tables (:mod:`driftline.spark.delta` writes them), so a
plain Parquet read of their folders would also see files a MERGE or a retention DELETE
has removed from the table but VACUUM has not deleted yet. The report and the demo read
them here; analysts do the same with ``deltalake.DeltaTable(path).to_pandas()`` (or
``.to_pyarrow_dataset()`` for polars and DuckDB).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from deltalake import DeltaTable


def read(table: str | Path, source: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of the Delta table at ``table`` (of ``source`` only, if given), partition
    columns included; an empty frame when no batch has written it yet."""
    location = str(table)
    if not DeltaTable.is_deltatable(location):
        return pd.DataFrame()
    filters = [("source", "=", source)] if source is not None else None
    return DeltaTable(location).to_pandas(columns=columns, filters=filters)
