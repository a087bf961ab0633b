"""Throughput of the streaming path, each stage measured on the same topic in one run.

1. raw consume: confluent-kafka reading the topic, no processing (the ceiling);
2. decode only: the same read plus ``BulkDecoder`` into Arrow (what the source does);
3. record-by-record decode with fastavro (``AvroDecoder``), for reference;
4. end to end: ``driftline.spark.job.run`` until idle (source, rules, windows,
   tables, dead letters, drift scoring against a reference profile), timed after the
   SparkSession is up.

It also times ``ReferenceProfile.score`` on one window's counts (the driver-side
drift work per closed window: six features, PSI / KS / chi-square, BH, verdicts), and
measures the event-to-alert latency through real Prometheus and Alertmanager over
``--alert-runs`` drift injections (median and p95; see ``bench/alert_latency.py``).

Each rate is printed as records/s and as a ratio to the raw consume rate. Run on
the embedded broker; ``--records`` sets the size (default 200,000 payments records).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench import alert_latency
from driftline.config import load_pipeline
from driftline.kafka.broker import EmbeddedBroker, free_port
from driftline.kafka.bulk_decode import BulkDecoder
from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer, produce
from driftline.kafka.codec import AvroDecoder, AvroEncoder
from driftline.kafka.registry import FileSchemaRegistry

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 4


def _produce(bootstrap: str, topic: str, records: int) -> None:
    from driftline.testing import SignalGenerator

    registry = FileSchemaRegistry(REPO / "schemas")
    encoder = AvroEncoder(registry.get("payments"))
    ensure_topics(make_admin(bootstrap), [TopicSpec(topic, PARTITIONS)])
    producer = make_producer(bootstrap)
    generator = SignalGenerator("payments", seed=1)
    for first in range(0, records, 50_000):
        for record in generator.records(min(50_000, records - first), first_index=first):
            produce(producer, topic, value=encoder.encode(record.value), key=record.value["card_id"].encode())
        producer.poll(0)
    assert producer.flush(120) == 0


def _consume(bootstrap: str, topic: str, records: int, on_chunk=None) -> float:
    """Seconds to read every record of ``topic`` (optionally handing 50k-record chunks on)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen, chunk = 0, []
    started = time.perf_counter()
    while seen < records:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is None:
                seen += 1
                if on_chunk is not None:
                    chunk.append(message.value())
                    if len(chunk) >= 50_000:
                        on_chunk(chunk)
                        chunk = []
    if chunk and on_chunk is not None:
        on_chunk(chunk)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--alert-runs", type=int, default=5, help="drift injections timed to the alert")
    args = parser.parse_args()
    n = args.records
    registry = FileSchemaRegistry(REPO / "schemas")
    reader = registry.get("payments")
    with tempfile.TemporaryDirectory() as scratch:
        broker = EmbeddedBroker(Path(scratch) / "broker", port=free_port())
        state = broker.start()
        try:
            topic = "bench.signals.payments"
            _produce(state.bootstrap, topic, n)
            results = {"raw consume": n / _consume(state.bootstrap, topic, n)}
            bulk = BulkDecoder(registry, reader)
            results["consume + bulk decode"] = n / _consume(state.bootstrap, topic, n, bulk.decode)
            per_record = AvroDecoder(registry, reader)
            sample = min(n, 50_000)
            results["consume + fastavro per record"] = sample / _consume(
                state.bootstrap, topic, sample, lambda values: [per_record.decode(v) for v in values]
            )
            from driftline.spark.session import build_session

            spark = build_session("driftline-bench")
            try:
                results["end-to-end job"] = n / _job_seconds(spark, state.bootstrap, Path(scratch), topic)
                latency = None
                if args.alert_runs:
                    print(f"event-to-alert latency over {args.alert_runs} runs (Prometheus + Alertmanager):")
                    runs = alert_latency.measure(spark, state.bootstrap, Path(scratch), args.alert_runs)
                    latency = alert_latency.summarize(runs)
            finally:
                spark.stop()
        finally:
            broker.stop(force=True)
    raw = results["raw consume"]
    print(f"driftline bench: {n:,} payments records, {PARTITIONS} partitions, embedded broker")
    for name, rate in results.items():
        print(f"  {name:<32} {rate:>12,.0f} records/s   {rate / raw:6.3f} x raw")
    windows_per_second = _scoring_rate()
    print(
        f"  {'drift scoring (driver)':<32} {windows_per_second:>12,.0f} windows/s (6 features, default grid)"
    )
    if latency:
        setup = "10 s windows, 4 s watermark, 2-of-3 persistence, 1 s scrape"
        print(f"  {'event-to-alert latency':<32} median {latency['median_s']:.1f} s, "
              f"p95 {latency['p95_s']:.1f} s over {latency['runs']} runs ({setup})")  # fmt: skip
    print(
        json.dumps(
            {
                **{k: round(v) for k, v in results.items()},
                "windows_scored_per_s": round(windows_per_second),
                "alert_latency": latency,
            }  # fmt: skip
        )
    )


def _reference_records(count: int):
    from driftline.testing import SignalGenerator

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


def _job_seconds(spark, bootstrap: str, scratch: Path, topic: str) -> float:
    from driftline.spark.job import run

    config = load_pipeline(REPO / "pipelines" / "demo.toml")
    config = config.with_kafka(bootstrap_servers=bootstrap, topic_prefix="bench.").model_copy(
        update={
            "state_dir": str(scratch / "state"),
            "warehouse_dir": str(scratch / "warehouse"),
            "metrics": config.metrics.model_copy(update={"port": 0}),
        }
    )
    assert config.topic("payments") == topic
    references = scratch / "references"
    _profile(config).save(references / "payments" / "bench.json")
    config = config.model_copy(
        update={"reference": config.reference.model_copy(update={"path": str(references)})}
    )
    started = time.perf_counter()
    summary = run(spark, config, sources=["payments"])
    elapsed = time.perf_counter() - started
    assert (
        summary.sources["payments"].read
        == summary.sources["payments"].valid
        + summary.sources["payments"].dead_lettered
        + summary.sources["payments"].late
    )
    return elapsed


if __name__ == "__main__":
    main()
