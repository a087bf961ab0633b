"""Throughput of the streaming path, each stage measured on the same topic in one run.

1. raw consume: confluent-kafka reading the topic, no processing (the ceiling);
2. Spark's Kafka source into a ``noop`` sink (what Spark costs before any work);
3. the same source + the Confluent frame check + ``from_avro`` per schema id
   (:class:`driftline.spark.decode.FrameDecoder`) into a ``noop`` sink;
4. the whole job: ``driftline.spark.job.run`` until idle (decode, rules, windows,
   tables, dead letters, drift scoring against a reference profile), on the same topic:
   the generator's 10 records per second of event time, so a batch of 200,000 records
   spans about 67 five-minute windows of 3,000 rows, where the per-window partials
   (grid bins above all) are nearly as many as the rows;
5. the whole job on a second topic of as many records, 1,000 per second of event time
   (a busy source's backlog: a batch spans under a window of 300,000 rows), where the
   partials are small next to the rows.

Stages 2-4 run in one SparkSession with the same per-batch cap
(``[kafka] max_offsets_per_trigger``), timed after the session is up; stages 2 and 3
run twice, alternated, and the faster run of each counts (the session's first query
also pays for class loading and JIT warm-up). Each rate is
printed as records/s and as ratios to raw consume and to source -> noop; the job's
time is broken down by batch step (its ``batch_step`` log lines, summed).

It compares the open windows' state kept by Spark's own RocksDB state store with
driftline's versioned table on the same input (``bench/state_choice.py``), a batch's
Delta commits with the plain Parquet write (``bench/table_writes.py``), and it times
``ReferenceProfile.score`` on one window's counts (the driver-side
drift work per closed window), and measures the event-to-alert latency through real
Prometheus and Alertmanager over ``--alert-runs`` drift injections (median and p95;
see ``bench/alert_latency.py``), and runs the trickle run: 1,000 records/s live into the
job in continuous mode for ``--trickle-batches`` micro-batches (default 300), batch
duration, state size and disk use against batch id, window close -> drift row
(``bench/trickle.py``), and 50 generated sources x 20 features next to 1 source x 20
features (``bench/many_sources.py``, ``--sources``), and the Spark census of those sources run
as one query per source and as one query for all (``bench/layout.py``). ``--records`` sets
the size (default 1,000,000 payments records, 4 partitions) on the embedded Apache Kafka
broker. Last, ``bench/jit.py`` decodes ``--jit-records`` frames in two fresh JVMs, with
and without ``-XX:-DontCompileHugeMethods``, side by side. First of all (before the
broker starts), ``bench/startup.py`` starts ``--startup-rounds`` pairs of fresh driver
processes with and without the class archive of ``make install``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench import (
    StepTimes,
    alert_latency,
    batch_log,
    jit,
    layout,
    many_sources,
    startup,
    table_writes,
    trickle,
)
from bench import state_choice as state_bench
from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.kafka.broker import EmbeddedBroker, free_port
from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer, produce

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 4


def _produce(bootstrap: str, topic: str, records: int, interval: timedelta | None = None) -> None:
    from driftline.demo import SignalGenerator

    registry = FileSchemaRegistry(REPO / "schemas")
    encoder = AvroEncoder(registry.get("payments"))
    ensure_topics(make_admin(bootstrap), [TopicSpec(topic, PARTITIONS)])
    producer = make_producer(bootstrap)
    generator = SignalGenerator("payments", seed=1, **({"interval": interval} if interval else {}))
    for first in range(0, records, 50_000):
        for record in generator.records(min(50_000, records - first), first_index=first):
            produce(producer, topic, value=encoder.encode(record.value), key=record.value["card_id"].encode())
        producer.poll(0)
    assert producer.flush(120) == 0


def _consume(bootstrap: str, topic: str, records: int) -> float:
    """Seconds to read every record of ``topic`` with confluent-kafka, doing nothing with them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    started = time.perf_counter()
    while seen < records:
        seen += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--alert-runs", type=int, default=5, help="drift injections timed to the alert")
    parser.add_argument("--trickle-batches", type=int, default=300, help="micro-batches of the trickle run")
    parser.add_argument("--sources", type=int, default=50, help="generated sources (x 20 features) vs 1")
    parser.add_argument("--jit-records", type=int, default=250_000,
                        help="frames decoded with and without the JIT flag; 0 skips")  # fmt: skip
    parser.add_argument("--startup-rounds", type=int, default=3,
                        help="driver starts with and without the class archive; 0 skips")  # fmt: skip
    args = parser.parse_args()
    starts = startup.measure(args.startup_rounds) if args.startup_rounds else None
    n = args.records
    steps, dense_steps = StepTimes(), StepTimes()
    with tempfile.TemporaryDirectory() as scratch:
        broker = EmbeddedBroker(Path(scratch) / "broker", port=free_port())
        state = broker.start()
        try:
            topic = "bench.signals.payments"
            _produce(state.bootstrap, topic, n)
            results = {"raw consume": n / _consume(state.bootstrap, topic, n)}
            from driftline.spark.session import build_session

            spark = build_session("driftline-bench")
            try:
                config = _config(state.bootstrap, Path(scratch))
                # alternated and repeated, the faster of two runs each: the first query of a
                # session pays for class loading and JIT warm-up, which is no stage's own cost
                noop = {False: [], True: []}
                for attempt in range(2):
                    for decode in (False, True):
                        seconds = _noop_seconds(spark, config, topic, Path(scratch), decode, attempt)
                        noop[decode].append(seconds)
                results["spark kafka source -> noop"] = n / min(noop[False])
                results["source + frame check + from_avro -> noop"] = n / min(noop[True])
                with batch_log(steps):
                    results["whole job until idle"] = n / _job_seconds(spark, config, Path(scratch), topic)
                dense = _config(state.bootstrap, Path(scratch) / "dense", prefix="dense.")
                _produce(state.bootstrap, dense.topic("payments"), n, interval=timedelta(milliseconds=1))
                with batch_log(dense_steps):
                    results["whole job, 1,000 records/s of event time"] = n / _job_seconds(
                        spark, dense, Path(scratch) / "dense", dense.topic("payments")
                    )
                spark.conf.set("spark.sql.streaming.stateStore.providerClass", state_bench.ROCKSDB)
                state_choice = state_bench.measure(spark, batches=24, rows=20_000)
                writes = table_writes.measure(spark, Path(scratch))
                latency = None
                if args.alert_runs:
                    print(f"event-to-alert latency over {args.alert_runs} runs (Prometheus + Alertmanager):")
                    latency = alert_latency.measure(spark, state.bootstrap, Path(scratch), args.alert_runs)
                wide = layouts = None
                if args.sources:
                    print(f"1 source and {args.sources} sources x 20 features ...")
                    setups = ((1, False), (args.sources, False), (args.sources, True))
                    wide = [many_sources.measure(spark, state.bootstrap, Path(scratch), sources=n,
                                                 shared=shared) for n, shared in setups]  # fmt: skip
                    print(f"{args.sources} sources: one query each vs one query for all ...")
                    layouts = layout.measure(spark, state.bootstrap, Path(scratch), sources=args.sources)
                trickle_result = None
                if args.trickle_batches:
                    print(f"trickle run: 1,000 records/s until {args.trickle_batches} batches ...")
                    trickle_result = trickle.measure(spark, state.bootstrap, Path(scratch),
                                                     batches=args.trickle_batches)  # fmt: skip
            finally:
                spark.stop()
        finally:
            broker.stop(force=True)
    raw, source = results["raw consume"], results["spark kafka source -> noop"]
    print(f"driftline bench: {n:,} payments records, {PARTITIONS} partitions, embedded Apache Kafka, "
          f"{config.kafka.max_offsets_per_trigger:,} records per batch at most")  # fmt: skip
    for name, rate in results.items():
        print(
            f"  {name:<42} {rate:>10,.0f} records/s   {rate / raw:6.3f} x raw   {rate / source:6.3f} x source"
        )
    runs = (("10 records/s of event time", steps), ("1,000 records/s of event time", dense_steps))
    for label, times in runs:
        total = sum(times.seconds.values()) or 1.0
        print(f"  where the job's time goes, {label} ({len(times.batches)} batches, seconds summed):")
        for step, seconds in sorted(times.seconds.items(), key=lambda kv: -kv[1]):
            print(f"    {step:<24} {seconds:8.1f} s  {seconds / total:6.1%}")
    windows_per_second = _scoring_rate()
    print(
        f"  {'drift scoring (driver)':<42} {windows_per_second:>10,.0f} windows/s (6 features, default grid)"
    )
    print("  window state, Spark's RocksDB state store vs the versioned table (24 batches of 20,000):")
    print("\n".join(f"    {line}" for line in state_bench.report(state_choice).splitlines()))
    print("  one batch's table write, 20 feature_stats rows (bench/table_writes.py):")
    print("\n".join(f"    {line}" for line in table_writes.report(writes).splitlines()))
    if latency:
        print("  event-to-alert latency (10 s windows, 4 s watermark, 2-of-3 persistence, 1 s scrape):")
        print("\n".join(f"    {line}" for line in alert_latency.report(latency).splitlines()))
    if wide:
        print("  many sources (a query each, or one shared query of sources with one schema; until idle):")
        print("\n".join(f"    {line}" for line in many_sources.report(wide).splitlines()))
        print("  the census alone, one query per source vs one query for all (bench/layout.py):")
        print("\n".join(f"    {line}" for line in layout.report(layouts).splitlines()))
    if args.jit_records:
        print("  " + jit.report(jit.measure(args.jit_records), args.jit_records).replace("\n", "\n  "))
    if starts:
        print("  a local driver's start, with and without the class archive (bench/startup.py):")
        print("\n".join(f"    {line}" for line in startup.report(starts).splitlines()))
    if trickle_result:
        print("  trickle run (continuous mode):")
        print("\n".join(f"    {line}" for line in trickle.report(trickle_result).splitlines()))
    print(
        json.dumps(
            {
                **{k: round(v) for k, v in results.items()},
                "ratio_to_source": {k: round(v / source, 3) for k, v in results.items()},
                "job_step_seconds": {k: round(v, 1) for k, v in steps.seconds.items()},
                "dense_job_step_seconds": {k: round(v, 1) for k, v in dense_steps.seconds.items()},
                "windows_scored_per_s": round(windows_per_second),
                "alert_latency": latency and {m: alert_latency.summarize(v) for m, v in latency.items()},
                "window_state": state_choice,
                "table_writes": table_writes.summary(writes),
                "trickle": trickle.summary(trickle_result) if trickle_result else None,
                "many_sources": wide,
                "layouts": layouts,
                "startup": starts,
            }  # fmt: skip
        )
    )


def _config(bootstrap: str, scratch: Path, prefix: str = "bench."):
    config = load_pipeline(REPO / "pipelines" / "demo.toml")
    return config.with_kafka(bootstrap_servers=bootstrap, topic_prefix=prefix).model_copy(
        update={
            "state_dir": str(scratch / "state"),
            "warehouse_dir": str(scratch / "warehouse"),
            "metrics": config.metrics.model_copy(update={"port": 0}),
        }
    )


def _noop_seconds(spark, config, topic: str, scratch: Path, decode: bool, attempt: int) -> float:
    """Seconds for the Kafka source (optionally with the decode) to drain ``topic`` into ``noop``."""
    from driftline.avro.registry import open_registry
    from driftline.spark.decode import FrameDecoder
    from driftline.spark.kafka_source import kafka_stream

    stream = kafka_stream(spark, config, [topic])
    if decode:
        registry = open_registry(config.path(config.schemas_dir))
        stream = FrameDecoder(registry, registry.get("payments")).decode(stream)
    checkpoint = scratch / f"noop-{'decode' if decode else 'source'}-{attempt}"
    started = time.perf_counter()
    query = (
        stream.writeStream.format("noop").option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True).start()
    )  # fmt: skip
    query.awaitTermination()
    return time.perf_counter() - started


def _reference_records(count: int):
    from driftline.demo import SignalGenerator

    return [
        r.value for r in SignalGenerator("payments", seed=1234, exclude_fields=("channel",)).records(count)
    ]


def _profile(config):
    from driftline.stats import ReferenceProfile

    spec = config.source("payments")
    rows = _reference_records(20_000)
    columns = {f: [r[f] for r in rows] for f in spec.features}
    kinds = {k: [f for f, c in spec.features.items() if c.kind == k] for k in ("numeric", "categorical")}
    return ReferenceProfile.fit(
        columns, numeric=kinds["numeric"], categorical=kinds["categorical"], version="bench"
    )


def _scoring_rate() -> float:
    config = load_pipeline(REPO / "pipelines" / "demo.toml")
    profile = _profile(config)
    window = _reference_records(2_000)
    counts = {
        name: feature.window_counts([r[name] for r in window]) for name, feature in profile.features.items()
    }
    rounds, started = 200, time.perf_counter()
    for _ in range(rounds):
        profile.score(counts, methods=("psi", "ks", "chi2"))
    return rounds / (time.perf_counter() - started)


def _job_seconds(spark, config, scratch: Path, topic: str) -> float:
    from driftline.spark.job import run

    assert config.topic("payments") == topic
    references = scratch / "references"
    _profile(config).save(references / "payments" / "bench.json")
    config = config.model_copy(
        update={"reference": config.reference.model_copy(update={"path": str(references)})}
    )
    started = time.perf_counter()
    summary = run(spark, config, sources=["payments"])
    elapsed = time.perf_counter() - started
    payments = summary.sources["payments"]
    assert payments.read == payments.valid + payments.dead_lettered + payments.late
    return elapsed


if __name__ == "__main__":
    main()
