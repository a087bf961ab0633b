"""One query for all sources, or one query per source: the Spark part of a batch, side by side.

The question of the bounded-state issue's point 7: should ``driftline run`` read all of a
pipeline's topics in one streaming query instead of one query per source? This bench
runs the same work both ways on the same topics (``bench/many_sources.py``'s generated
sources: ``sources`` x 20 numeric features, ``records`` per source):

- **per source**: ``sources`` queries, each reading its topic, ``per_batch`` records
  per micro-batch;
- **one query**: one query reading every topic, ``sources x per_batch`` records per
  micro-batch, each topic decoded with its own schema (``from_avro``) and the
  branches unioned;
- **one shared**: the same query as if the sources shared one schema (the generated
  schemas differ only in their names, so one decode reads them all), keyed by topic:
  the best case of one query.

The work per batch is the job's Spark census, trimmed to what both layouts share: the
batch's Kafka rows cached once, decode, one-minute windows, and per (source, window,
feature) count, sum, sum of squares, min and max, collected to the driver in one
action. driftline's rules, dead letters, state merge and drift scoring are not in it
(they are per source on the driver either way). Printed: wall time, records/s,
batches, batch body p50/p95, and the ratio; both layouts' counts must equal
``records x 20`` per source.
"""

from __future__ import annotations

import json
import time
from functools import reduce
from pathlib import Path

from bench import percentile
from bench.many_sources import FEATURES, _prepare, _schema


def _census(batch, sources: list[tuple[int, str, str]], out: list, shared: bool = False) -> None:
    """Runs on the driver once per micro-batch (``foreachBatch``): one Spark job. With
    ``shared``, the sources share one schema: one decode for all, keyed by topic."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    started = time.perf_counter()
    features = [f"f{j:02d}" for j in range(FEATURES)]
    batch = batch.select("topic", "value").persist()  # read from Kafka once, as the job does
    names = F.create_map(*(F.lit(x) for _, name, topic in sources for x in (topic, name)))
    branches = [(0, F.element_at(names, F.col("topic")), batch)] if shared else [
        (index, F.lit(name), batch if len(sources) == 1 else batch.where(F.col("topic") == topic))
        for index, name, topic in sources
    ]  # fmt: skip
    parts = []
    for index, source, rows in branches:
        record = from_avro(F.expr("substring(value, 6)"), json.dumps(_schema(index))).alias("r")
        parts.append(rows.select(source.alias("source"), record).select(
            "source", F.window("r.event_time", "1 minute").start.alias("window"),
            *(F.col(f"r.{f}").alias(f) for f in features),
        ))  # fmt: skip
    wide = reduce(DataFrame.unionByName, parts)
    long = wide.unpivot(["source", "window"], features, "feature", "value")
    rows = long.groupBy("source", "window", "feature").agg(
        F.count("value").alias("n"), F.sum("value").alias("sum"), F.sum(F.col("value") ** 2).alias("sum2"),
        F.min("value").alias("min"), F.max("value").alias("max"),
    ).collect()  # fmt: skip
    batch.unpersist()
    out.append((time.perf_counter() - started, rows))


def _run(spark, config, scratch: Path, groups: list[list[tuple[int, str, str]]], per_batch: int, tag: str,
         shared: bool = False):  # fmt: skip
    """One query per group of sources, until each has read everything; (seconds, bodies)."""
    bodies: list = []
    queries = []
    started = time.perf_counter()
    for number, group in enumerate(groups):
        stream = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", config.kafka.bootstrap_servers)
            .option("subscribe", ",".join(topic for _, _, topic in group))
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", per_batch * len(group))
            .load()
        )
        queries.append(
            stream.writeStream.foreachBatch(
                lambda batch, _id, group=group: _census(batch, group, bodies, shared)
            )
            .option("checkpointLocation", str(scratch / f"layout-{tag}-{number}"))
            .trigger(availableNow=True)
            .start()
        )
    for query in queries:
        query.awaitTermination()
    return time.perf_counter() - started, bodies


def measure(spark, bootstrap: str, scratch: Path, *, sources: int = 50, records: int = 2_000,
            per_batch: int = 500) -> list[dict]:  # fmt: skip
    """Both layouts on the same topics; one dict of figures per layout."""
    config = _prepare(scratch / f"layout{sources}", bootstrap, sources, records)
    all_sources = [(i, name, config.topic(name)) for i, name in enumerate(config.sources)]
    results = []
    layouts = (
        ("per-source", [[s] for s in all_sources], False),
        ("one-query", [all_sources], False),
        ("one-shared", [all_sources], True),  # as if the sources shared one schema
    )
    for tag, groups, shared in layouts:
        seconds, bodies = _run(spark, config, scratch, groups, per_batch, tag, shared)
        counts: dict = {}
        for _, rows in bodies:
            for row in rows:
                counts[row["source"]] = counts.get(row["source"], 0) + row["n"]
        assert counts == {name: records * FEATURES for _, name, _ in all_sources}, counts
        body_seconds = [s for s, _ in bodies]
        results.append({
            "layout": tag, "queries": len(groups), "sources": sources, "records": sources * records,
            "seconds": seconds, "batches": len(bodies), "body_p50_s": percentile(body_seconds, 0.5),
            "body_p95_s": percentile(body_seconds, 0.95), "body_total_s": sum(body_seconds),
        })  # fmt: skip
    return results


def report(results: list[dict]) -> str:
    lines = [
        "layout       queries   records   wall s   records/s   batches   census p50 / p95 s   census total s"
    ]
    for r in results:
        lines.append(
            f"{r['layout']:<12} {r['queries']:>7} {r['records']:>9,} {r['seconds']:>8.1f} "
            f"{r['records'] / r['seconds']:>11,.0f} {r['batches']:>9} {r['body_p50_s']:>12.2f} / "
            f"{r['body_p95_s']:<6.2f} {r['body_total_s']:>14.1f}"
        )
    for r in results[1:]:
        lines.append(f"{r['layout']} / per-source, records/s: {results[0]['seconds'] / r['seconds']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    """``python -m bench.layout [--sources 50] [--records 2000]``."""
    from bench import broker_and_session, sources_arguments

    args = sources_arguments(__doc__.splitlines()[0])
    with broker_and_session("driftline-layout") as (spark, bootstrap, scratch):
        print(report(measure(spark, bootstrap, scratch, sources=args.sources, records=args.records)))


if __name__ == "__main__":
    main()
