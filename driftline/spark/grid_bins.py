"""Reference-grid bins of a batch's numeric columns, on the JVM with Spark ML's ``Bucketizer``.

The slot of a value ``x`` in a :class:`~driftline.stats.binning.NumericBinning` is
``numpy.searchsorted(edges, x, side="right")`` (``+inf`` in the last value bin), and the
null slot ``len(edges) + 1`` for null and NaN. ``Bucketizer`` with splits
``[-inf, *edges, +inf]`` puts ``x`` in bucket ``i`` when ``splits[i] <= x < splits[i+1]``
(the last bucket also holds ``+inf``), which is the same number; with
``handleInvalid = "keep"`` NaN goes to bucket ``len(splits) - 1 = len(edges) + 1``, the
null slot, and a null input gives null, which :meth:`GridBins.slots` maps to it too.
Java compares ``-0.0 < 0.0`` where numpy does not, so values and edges are normalised
(``x + 0.0``) first.

Where and when it runs: :class:`GridBins` is built once per source on the driver, one
JVM ``Bucketizer`` for all numeric features, its splits handed over as one JSON string
(a 10,000-edge grid costs one Py4J call, not thousands). Each micro-batch's
:meth:`GridBins.slots` adds the transform to the batch's plan; the binary search then
runs per row in the executors' JVMs. The edges live in the Bucketizer's closure, not
as literals in the plan, so the plan text Spark keeps for the UI and its listener
events stays small however many features and sources a driver holds. What the batch's
plan does hold: ``Bucketizer`` labels each output column with one nominal value per
bucket (``"a, b"``), so a 10,000-edge grid adds about 10,000 short strings per feature
to the column's metadata while the batch runs (built on the driver in milliseconds,
released with the batch; not part of the plan's text).
"""

from __future__ import annotations

import json

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from driftline.spark.window_stats import WINDOW_KEY, keep_pairs, pair_key
from driftline.stats.binning import NumericBinning


def _json_double(value: float) -> float | str:
    """Spark ML's JSON for a double param: infinities as the strings it decodes."""
    if value == float("inf"):
        return "Inf"
    if value == float("-inf"):
        return "-Inf"
    return value + 0.0


class GridBins:
    """One ``Bucketizer`` over ``binnings`` (feature name -> grid), built on the driver."""

    def __init__(self, spark: SparkSession, binnings: dict[str, NumericBinning]) -> None:
        self.names = sorted(binnings)
        self.null_slots = {name: binnings[name].null_slot for name in self.names}
        self._inputs = tuple(f"_grid_in_{i}" for i in range(len(self.names)))
        self._outputs = tuple(f"_grid_slot_{i}" for i in range(len(self.names)))
        splits = [
            [_json_double(e) for e in (float("-inf"), *binnings[name].edges, float("inf"))]
            for name in self.names
        ]
        jvm = spark.sparkContext._jvm
        bucketizer = jvm.org.apache.spark.ml.feature.Bucketizer()
        for param, value in (
            (bucketizer.splitsArray(), json.dumps(splits)),
            (bucketizer.inputCols(), json.dumps(self._inputs)),
            (bucketizer.outputCols(), json.dumps(self._outputs)),
            (bucketizer.handleInvalid(), json.dumps("keep")),
        ):
            bucketizer.set(param, param.jsonDecode(value))
        self._bucketizer = bucketizer

    def slots(self, frame: DataFrame, keep: list[str]) -> DataFrame:
        """``frame``'s ``keep`` columns plus the bucketizer's output, one double column
        per feature (null for a null input); :meth:`pairs` reads them."""
        # + 0.0 turns -0.0 into 0.0: Java's binary search orders -0.0 below 0.0.
        inputs = [
            (F.col(n).cast("double") + F.lit(0.0)).alias(i)
            for n, i in zip(self.names, self._inputs, strict=True)
        ]
        jdf = self._bucketizer.transform(frame.select(*keep, *inputs)._jdf)
        return DataFrame(jdf, frame.sparkSession).select(*keep, *self._outputs)

    def pairs(self) -> Column:
        """An array of ``(feature, bin)`` structs over the columns :meth:`slots` made;
        a null bin (null input) becomes the feature's null slot."""
        return F.array(*[
            F.struct(
                F.lit(name).alias("feature"),
                F.coalesce(F.col(self._outputs[i]).cast("int"), F.lit(self.null_slots[name])).alias("bin"),
            )
            for i, name in enumerate(self.names)
        ])  # fmt: skip


class SortedGrids:
    """Several sources' reference grids as one Spark frame: the bins of a shared query's
    batch (:mod:`driftline.spark.fused`) in one aggregation keyed by source.

    One ``Bucketizer`` holds one grid per column, so the sources of a query, each with
    its own grids over the same features, cannot share one. Here the bin comes from a
    sort instead: the batch's values and every grid's edges are put in one frame,
    ordered per (source, feature) by value with an edge before a value it equals, and
    a value's bin is the number of edges up to it, ``sum(_edge)`` over the rows before
    it: that is ``searchsorted(edges, x, side="right")``, the bin of
    :class:`~driftline.stats.binning.NumericBinning` (``+inf`` in the last value bin).
    Null and NaN sort after every value (``_null = 1``), behind one more edge row per
    grid, so they count ``len(edges) + 1``: the null slot. Values and edges are
    normalised with ``+ 0.0`` (Java orders ``-0.0`` below ``0.0``).

    Where and when it runs: built once per query on the driver (the edges become one
    cached Spark frame, ``source, feature, _null, _v, _edge``); each batch's
    :meth:`bin_partials` adds a window function and an aggregation to the batch's plan,
    run by the executors. The sort moves a shuffle of the batch's values and the
    edges of the sources in it, never a row to the driver.
    """

    def __init__(self, spark: SparkSession, grids: dict[str, dict[str, NumericBinning]]) -> None:
        """``grids``: per source, its numeric features' grids."""
        import pyarrow as pa

        columns: dict[str, list] = {"source": [], "feature": [], "_null": [], "_v": [], "_edge": []}
        for source, binnings in grids.items():
            for feature, binning in binnings.items():
                count = len(binning.edges) + 1  # the edges and the null slot's edge
                columns["source"] += [source] * count
                columns["feature"] += [feature] * count
                columns["_null"] += [0] * len(binning.edges) + [1]
                columns["_v"] += [e + 0.0 for e in binning.edges] + [None]
                columns["_edge"] += [1] * count
        schema = pa.schema([("source", pa.string()), ("feature", pa.string()), ("_null", pa.int32()),
                            ("_v", pa.float64()), ("_edge", pa.int32())])  # fmt: skip
        table = pa.table(columns, schema=schema)
        self.keys = frozenset(pair_key(s, f) for s, binnings in grids.items() for f in binnings)
        self.features = tuple(sorted({f for binnings in grids.values() for f in binnings}))
        self.edges = spark.createDataFrame(table.to_pandas()).persist()
        self.rows = self.edges.count()  # materialised once, at start

    def bin_partials(self, windowed: DataFrame, sources: list[str]) -> DataFrame:
        """Per (source, window, feature, bin): rows of ``windowed`` (with ``source``) in
        that bin of the source's grid; features the source has no grid for are left out.
        ``sources``: the sources in the batch (only their edges are sorted)."""
        from pyspark.sql.window import Window

        pairs = F.array(*[
            F.struct(F.lit(f).alias("feature"), (F.col(f).cast("double") + F.lit(0.0)).alias("_x"))
            for f in self.features
        ])  # fmt: skip
        values = windowed.select(*WINDOW_KEY, F.explode(pairs).alias("_p")).select(
            *WINDOW_KEY, "_p.feature", "_p._x"
        )
        values = keep_pairs(values, "feature", self.keys)
        missing = F.col("_x").isNull() | F.isnan("_x")
        values = values.select(
            *WINDOW_KEY, "feature", missing.cast("int").alias("_null"),
            F.when(~missing, F.col("_x")).alias("_v"), F.lit(0).alias("_edge"),
        )  # fmt: skip
        none = F.lit(None).cast("timestamp")
        edges = self.edges.where(F.col("source").isin(sources)).select(
            "source", none.alias("window_start"), none.alias("window_end"), "feature", "_null", "_v", "_edge"
        )
        order = Window.partitionBy("source", "feature").orderBy("_null", "_v", F.desc("_edge"))
        ranked = values.unionByName(edges).withColumn(
            "bin", F.sum("_edge").over(order.rowsBetween(Window.unboundedPreceding, Window.currentRow))
        )
        return (
            ranked.where(F.col("_edge") == 0)
            .groupBy(*WINDOW_KEY, "feature", F.col("bin").cast("int").alias("bin"))
            .agg(F.count(F.lit(1)).alias("count"))
        )
