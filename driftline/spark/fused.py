"""One census for all the sources of a shared query: one aggregation keyed by source.

A shared query (:mod:`driftline.spark.shared_query`) decodes its batch once; without
this module each of its sources would still run its own census and partials, one Spark
action per source per batch (measured in ``docs/scaling.md``: 50 sources, 148 s a query
batch). :class:`FusedCensus` instead splits, checks and aggregates all the sources'
rows in one plan, every aggregation keyed by ``source``, and collects it in one
action; each source then finishes its batch from its own rows of what was collected
(:meth:`driftline.spark.batch.BatchProcessor.finish`).

What differs between the sources becomes data in that plan, never one branch per source:

- the source of a row: ``element_at(map(topic -> source), _topic)``;
- the watermark: ``element_at(map(source -> watermark), source)`` (null, no row late,
  for a source that has none yet);
- the finite check and the row rules: one ``CASE`` on ``source`` per distinct feature
  list or rule list (sources with the same suite share one branch);
- the features: one long format over the union of the sources' features, keeping the
  (source, feature) pairs a source has;
- the reference grids: one sorted frame of every source's edges
  (:class:`~driftline.spark.grid_bins.SortedGrids`) instead of one ``Bucketizer``
  per source.

The window size, slide, event-time field and ``max_future`` are literals of Spark's
``window`` and of the event-time check, so they must be the same for every source of
the query (:meth:`FusedCensus.of` returns None otherwise, and the query runs each
source's census apart, as before).

Where and when it runs: built once per query on the driver when it starts; per batch,
inside the query's ``foreachBatch``, :meth:`FusedCensus.split` and
:meth:`FusedCensus.frames` build frames (no Spark action) and :meth:`FusedCensus.share`
cuts the collected Arrow tables by source on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from driftline.quality.reasons import ReasonCode
from driftline.spark import window_stats as ws
from driftline.spark.batch import SourcePlan
from driftline.spark.census import census_frame
from driftline.spark.decode import refuse
from driftline.spark.event_time import with_event_time_check
from driftline.spark.finite import not_finite_detail
from driftline.spark.grid_bins import SortedGrids
from driftline.spark.split import Split, dead_partials, split_rows


def _groups(
    plans: Sequence[SourcePlan], key: Callable[[SourcePlan], object]
) -> list[tuple[object, list[str]]]:
    """The sources by equal ``key(plan)``, in first-seen order (keys need not be hashable)."""
    groups: list[tuple[object, list[str]]] = []
    for plan in plans:
        for value, sources in groups:
            if value == key(plan):
                sources.append(plan.source)
                break
        else:
            groups.append((key(plan), [plan.source]))
    return groups


def _by_source(groups: list[tuple[object, list[str]]], column: Callable[[object], Column | None]) -> Column:
    """One ``CASE`` on ``source``: each group's ``column(key)``, null where it gives None."""
    case = None
    for value, sources in groups:
        branch = column(value)
        if branch is None:
            continue
        condition = F.col("source").isin(sources)
        case = F.when(condition, branch) if case is None else case.when(condition, branch)
    return case if case is not None else F.lit(None).cast("string")


def _map(pairs: dict[str, object]) -> Column:
    return F.create_map(*(F.lit(x) for pair in pairs.items() for x in pair))


class FusedCensus:
    """The census and partials of a shared query's sources in one plan (module docstring)."""

    def __init__(self, spark: SparkSession, plans: Sequence[SourcePlan], topics: Sequence[str]) -> None:
        self.plans = {plan.source: plan for plan in plans}
        first = plans[0]
        self.event_time, self.size, self.slide = first.event_time, first.window_seconds, first.slide_seconds
        self.max_future = first.max_future_seconds
        self.topics = dict(zip(topics, self.plans, strict=True))
        self.numeric = tuple(sorted({f for plan in plans for f in plan.numeric}))
        self.categorical = tuple(sorted({f for plan in plans for f in plan.categorical}))
        self.nullable = tuple(sorted({
            f for plan in plans if plan.schema_watch is not None for f in plan.schema_watch.nullable_fields
        }))  # fmt: skip
        self._finite = _groups(plans, lambda plan: plan.numeric)
        self._rules = _groups(plans, lambda plan: plan.rules)
        grids = {
            plan.source: plan.drift.binnings
            for plan in plans
            if plan.drift is not None and plan.drift.binnings
        }
        self.grids = SortedGrids(spark, grids) if grids else None

    @classmethod
    def of(
        cls, spark: SparkSession, plans: Sequence[SourcePlan], topics: Sequence[str]
    ) -> FusedCensus | None:
        """The fused census of these sources, or None when their windows, event-time
        field or ``max_future`` differ (those are literals of the plan)."""
        shape = {(p.event_time, p.window_seconds, p.slide_seconds, p.max_future_seconds) for p in plans}
        if len(shape) != 1 or any(p.warehouse is None for p in plans):
            return None
        return cls(spark, plans, topics)

    # -- per batch ------------------------------------------------------------------
    def checked(self, rows: DataFrame) -> DataFrame:
        """The decoded rows of all the sources with ``source`` and the decode stage's value
        checks (event time in range; each source's numeric features finite)."""
        rows = rows.withColumn("source", F.element_at(_map(self.topics), F.col("_topic")))
        rows = with_event_time_check(rows, self.event_time, self.max_future)
        detail = _by_source(self._finite, lambda numeric: not_finite_detail(numeric))
        return refuse(rows, detail.isNotNull(), ReasonCode.NOT_FINITE, detail)

    def split(self, rows: DataFrame, watermarks: dict[str, object], cache) -> Split:
        """The checked rows split by class, each source's rows against its own watermark
        and rules."""
        known = {source: w for source, w in watermarks.items() if w is not None}
        cut = F.element_at(_map(known), F.col("source")) if known else None
        return split_rows(rows, self._with_rules, cut, self.event_time, self.size, self.slide, cache)

    def _with_rules(self, rows: DataFrame) -> DataFrame:
        from driftline.spark.rules import failure_detail, first_failed_rule

        rule = _by_source(self._rules, lambda rules: first_failed_rule(rules) if rules else None)
        detail = _by_source(self._rules, lambda rules: failure_detail(rules) if rules else None)
        return rows.withColumn("_rule", rule).withColumn("_rule_detail", detail)

    def frames(self, split: Split, sources: list[str]) -> dict[str, DataFrame]:
        """Every kind of partial and the census of the batch, keyed by source, to be
        collected in one action; ``sources``: the ones with rows in the batch."""
        windowed = split.windowed
        frames = {"windows": ws.window_partials(windowed)}
        if self.numeric:
            frames["numeric"] = ws.numeric_partials(windowed, self.numeric, self._pairs("numeric"))
        if self.categorical:
            frames["categorical"] = ws.categorical_partials(
                windowed, self.categorical, self._pairs("categorical")
            )
        if self.grids is not None:
            frames["bins"] = self.grids.bin_partials(windowed, sources)
        if self.nullable:
            frames["nulls"] = ws.null_partials(windowed, self.nullable, self._pairs("nulls"))
        frames["dead"] = dead_partials(split, self.event_time, self.size, self.slide)
        frames["census"] = census_frame(split.decode_failed, split.checked, self.event_time,
                                        split.late_windowed, windowed)  # fmt: skip
        return frames

    def _pairs(self, kind: str) -> list[str] | None:
        """``source<US>feature`` of each source's features of ``kind``; None when every
        source has all of them (nothing to filter)."""
        union = {"numeric": self.numeric, "categorical": self.categorical, "nulls": self.nullable}[kind]
        pairs = [ws.pair_key(source, f) for source, plan in self.plans.items() for f in self._own(plan, kind)]
        return None if len(pairs) == len(union) * len(self.plans) else pairs

    @staticmethod
    def _own(plan: SourcePlan, kind: str) -> tuple[str, ...]:
        if kind == "nulls":
            return plan.schema_watch.nullable_fields if plan.schema_watch is not None else ()
        return plan.numeric if kind == "numeric" else plan.categorical

    def share(self, collected: dict[str, pa.Table], source: str) -> dict[str, pa.Table]:
        """One source's rows of what the fused frames collected: the kinds its own census
        would have had (:meth:`driftline.spark.batch.BatchProcessor.frames`)."""
        kinds = self.plans[source].partial_kinds | {"windows", "dead", "census"}
        return {
            kind: table.filter(pc.equal(table["source"], source))
            for kind, table in collected.items()
            if kind in kinds
        }


__all__ = ["FusedCensus"]
