"""``driftline sql``: Spark SQL over the quality tables, one query or a session of them.

Runs on the driver of a short-lived local Spark session the command starts. Views
are registered once (:func:`driftline.spark.views.register_views`); each query's
result is collected to the driver as pandas, so it is meant for the quality tables'
sizes (aggregates, a window's rows, a batch's dead letters), not for copying a table
out: for that, read the Parquet folders directly (the README shows DuckDB and pandas).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from driftline.errors import QueryError
from driftline.spark.views import TABLES, register_views
from driftline.sql import Format, render, save, statements

PROMPT, MORE = "driftline> ", "      ...> "


@dataclass
class SqlSession:
    spark: SparkSession
    warehouse: str
    views: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # pyspark logs a refused query with its JVM stack at ERROR; query() reports it as one line
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        self.views = register_views(self.spark, self.warehouse)

    def query(self, text: str) -> pd.DataFrame:
        """The result of ``text`` as pandas; a query Spark refuses is a :class:`QueryError`
        with Spark's message (first line) and the views there are."""
        try:
            return self.spark.sql(text).toPandas()
        except PySparkException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            missing = [t for t in TABLES if t not in self.views]
            known = ", ".join(self.views) or "none yet"
            hint = f"; views: {known}" + (f" (not written yet: {', '.join(missing)})" if missing else "")
            raise QueryError(f"query failed: {first}{hint}") from None

    def answer(self, text: str, fmt: Format, output: Path | None, out: TextIO = sys.stdout) -> None:
        """Run one query; print its result in ``fmt``, or write it to ``output``."""
        frame = self.query(text)
        if output is not None:
            save(frame, fmt, output)
            print(f"{len(frame)} rows written to {output}", file=sys.stderr)
        else:
            text = render(frame, fmt)
            out.write(text if text.endswith("\n") or not text else text + "\n")

    def repl(self, stream: TextIO, fmt: Format, output: Path | None, *, interactive: bool) -> None:
        """Statements ending in ``;`` from ``stream``, answered in turn. Interactive (a
        terminal): a prompt, and a failed query is reported and the session goes on.
        Otherwise (a script piped in): the first failure stops it with its error."""
        if interactive:
            views = ", ".join(self.views) or "none yet"
            print(f"views: {views}. End each statement with ';'. Ctrl-D quits.", file=sys.stderr)
        pending = ""
        while True:
            if interactive:
                print(MORE if pending.strip() else PROMPT, end="", file=sys.stderr, flush=True)
            line = stream.readline()
            if not line:
                break
            done, pending = statements(pending + line)
            for statement in done:
                try:
                    self.answer(statement, fmt, output)
                except QueryError as exc:
                    if not interactive:
                        raise
                    print(f"error: {exc}", file=sys.stderr)
        if pending.strip():  # a last statement without its ';'
            self.answer(pending.strip(), fmt, output)


__all__ = ["SqlSession"]
