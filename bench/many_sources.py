"""Many sources: 50 generated sources x 20 numeric features next to 1 source x 20 features.

Each source has its own generated Avro schema (``wide<NNN>``: an id, an event time and
``f00`` .. ``f19``, normal values), one topic partition, ``records`` records one second
apart and a reference profile fitted on the same distribution, so closing windows are
scored. ``driftline.spark.job.run`` processes everything until idle with
``per_batch`` records per source and micro-batch, all in one driver, in two layouts:
a streaming query per source, and (``shared``) the sources sharing one schema
(subject ``wide``) and one query (``query = "all"``), which decodes once per batch.
Printed per setup: wall time, records/s, per-source batch body wall time
(``batch_seconds`` log lines, p50/p95 over all sources' batches), the shared query's
batches (``query_batch_seconds``: decode plus every source's body), the time batches
waited at the driver-wide gate (``step=wait``, p50/p95), the newest state version's
size per source and, for the shared query, where a query batch's time goes (the
``batch_step`` lines summed per step over all sources, divided by the query batches).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench import BATCH_SECONDS, StepTimes, batch_log, disk_usage, percentile

FEATURES = 20


def _schema(index: int) -> dict:
    return {
        "type": "record", "name": f"Wide{index:03d}", "namespace": "io.driftline.bench",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            *({"name": f"f{j:02d}", "type": "double"} for j in range(FEATURES)),
        ],
    }  # fmt: skip


def _pipeline(folder: Path, bootstrap: str, sources: int, shared: bool = False) -> Path:
    """``sources`` generated sources; with ``shared``, they share one schema (subject
    ``wide``) and one streaming query (``query = "all"``), else each has its own of both."""
    names = [f"wide{i:03d}" for i in range(sources)]
    subjects = ["wide"] if shared else names
    for index, subject in enumerate(subjects):
        (folder / "schemas" / subject).mkdir(parents=True)
        (folder / "schemas" / subject / "v1.avsc").write_text(json.dumps(_schema(index)))
    features = "\n".join(f'f{j:02d} = {{ kind = "numeric" }}' for j in range(FEATURES))
    query = 'query = "all"' if shared else ""
    blocks = [
        f'[sources.{name}]\nsubject = "{"wide" if shared else name}"\nevent_time = "event_time"\n'
        f'entity_id = "id"\npartitions = 1\n{query}\n\n'
        f"[sources.{name}.features]\n{features}\n"
        for name in names
    ]
    text = f"""schemas_dir = "schemas"
state_dir = "state"
warehouse_dir = "warehouse"

[pipeline]
name = "wide"

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "many{uuid.uuid4().hex[:8]}."

{"".join(blocks)}
[windows]
size = "1 minute"
watermark = "1 minute"
trigger = "5 seconds"

[reference]
path = "references"
grid = 1000
bins = 10

[metrics]
enabled = false
"""
    path = folder / "wide.toml"
    path.write_text(text)
    return path


def _rows(records: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(records, FEATURES))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {"id": str(i), "event_time": start + timedelta(seconds=i), **{f"f{j:02d}": float(values[i, j])
                                                                       for j in range(FEATURES)}}
        for i in range(records)
    ]  # fmt: skip


def _prepare(folder: Path, bootstrap: str, sources: int, records: int, shared: bool = False):
    from driftline.avro.codec import AvroEncoder
    from driftline.avro.registry import FileSchemaRegistry
    from driftline.config import load_pipeline
    from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer
    from driftline.stats import ReferenceProfile

    config = load_pipeline(_pipeline(folder, bootstrap, sources, shared))
    registry = FileSchemaRegistry(folder / "schemas")
    names = list(config.sources)
    ensure_topics(make_admin(bootstrap), [TopicSpec(config.topic(n), 1) for n in names])
    producer = make_producer(bootstrap)
    reference_rows = _rows(2_000, seed=1)
    columns = {f"f{j:02d}": [r[f"f{j:02d}"] for r in reference_rows] for j in range(FEATURES)}
    profile = ReferenceProfile.fit(columns, numeric=list(columns), version="r1", grid=1000, bins=10)
    for index, name in enumerate(names):
        encoder = AvroEncoder(registry.get(config.sources[name].subject))
        for row in _rows(records, seed=100 + index):
            producer.produce(config.topic(name), value=encoder.encode(row), key=row["id"].encode())
            producer.poll(0)
        profile.save(folder / "references" / name / "r1.json")
    producer.flush(60)
    return config


_WAIT = re.compile(r"batch_step source=\S+ batch=\d+ step=wait seconds=([0-9.]+)")
_QUERY_BATCH = re.compile(r"query_batch_seconds query=\S+ batch=\d+ seconds=([0-9.]+)")


class _Batches(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: list[float] = []
        self.waits: list[float] = []
        self.query_batches: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if match := BATCH_SECONDS.match(text):
            self.seconds.append(float(match[3]))
        elif match := _WAIT.match(text):
            self.waits.append(float(match[1]))
        elif match := _QUERY_BATCH.match(text):
            self.query_batches.append(float(match[1]))


def measure(spark, bootstrap: str, scratch: Path, *, sources: int, records: int = 2_000,
            per_batch: int = 500, shared: bool = False) -> dict:  # fmt: skip
    """Run ``sources`` x 20 features until idle; return the figures. ``shared``: the
    sources share one schema and one streaming query, which reads ``per_batch`` records
    per source and batch (``sources x per_batch`` in all)."""
    from driftline.spark.job import run

    folder = scratch / f"many{sources}{'shared' if shared else ''}"
    config = _prepare(folder, bootstrap, sources, records, shared)
    handler, steps = _Batches(), StepTimes()  # steps: summed over every source and batch
    started = time.perf_counter()
    with batch_log(handler), batch_log(steps):
        summary = run(spark, config, max_records_per_batch=per_batch * (sources if shared else 1))
    elapsed = time.perf_counter() - started
    assert all(s.reconciles and s.read == records for s in summary.sources.values()), summary
    state = folder / "warehouse" / "_state" / "open"
    newest = []
    for source in state.iterdir():
        versions = sorted((p for p in source.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        newest.append(disk_usage(versions[-1])[0])
    seconds = handler.seconds
    return {
        "sources": sources, "features": FEATURES, "records": sources * records, "seconds": elapsed,
        "layout": "one shared query" if shared else "a query each", "queries": 1 if shared else sources,
        "query_batches": len(handler.query_batches) if shared else len(seconds),
        "query_batch_p50_s": percentile(handler.query_batches or seconds, 0.5),
        "query_batch_p95_s": percentile(handler.query_batches or seconds, 0.95),
        "batches": len(seconds), "batch_p50_s": percentile(seconds, 0.5),
        "batch_p95_s": percentile(seconds, 0.95),
        "wait_p50_s": percentile(handler.waits, 0.5), "wait_p95_s": percentile(handler.waits, 0.95),
        "state_bytes_per_source": int(np.mean(newest)),
        "steps_per_query_batch_s": {step: round(total / len(handler.query_batches), 2)
                                    for step, total in sorted(steps.seconds.items(), key=lambda kv: -kv[1])}
        if shared and handler.query_batches else None,
    }  # fmt: skip


def report(results: list[dict]) -> str:
    lines = [
        "sources x features   layout             records   wall s   records/s   source batches   "
        "body p50 / p95 s   query batches   query batch p50 / p95 s   wait p50 / p95 s   state/source"
    ]
    for r in results:
        lines.append(
            f"{r['sources']:>7} x {r['features']:<8}   {r['layout']:<16} {r['records']:>9,} "
            f"{r['seconds']:>8.1f} "
            f"{r['records'] / r['seconds']:>11,.0f} {r['batches']:>16} {r['batch_p50_s']:>9.2f} / "
            f"{r['batch_p95_s']:<6.2f} {r['query_batches']:>15} {r['query_batch_p50_s']:>16.2f} / "
            f"{r['query_batch_p95_s']:<6.2f} {r['wait_p50_s']:>8.2f} / {r['wait_p95_s']:<6.2f} "
            f"{r['state_bytes_per_source']:>12,} B"
        )
    for r in results:
        if r.get("steps_per_query_batch_s"):
            steps = ", ".join(
                f"{step} {seconds:.2f}" for step, seconds in r["steps_per_query_batch_s"].items()
            )
            lines.append(
                f"{r['sources']} sources, one shared query: steps per query batch, s (all sources): {steps}"
            )
    rate = {(r["sources"], r["layout"]): r["records"] / r["seconds"] for r in results}
    for (sources, layout), value in rate.items():
        if layout == "one shared query" and (sources, "a query each") in rate:
            lines.append(f"{sources} sources, one shared query / a query each, records/s: "
                         f"{value / rate[(sources, 'a query each')]:.2f}x")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """``python -m bench.many_sources [--sources 50]``: 1 source, then ``--sources`` with a
    query each, then ``--sources`` sharing one schema and one query."""
    from bench import broker_and_session, sources_arguments

    args = sources_arguments(__doc__.splitlines()[0])
    with broker_and_session("driftline-many-sources") as (spark, bootstrap, scratch):
        results = [
            measure(spark, bootstrap, scratch, sources=n, records=args.records, shared=shared)
            for n, shared in ((1, False), (args.sources, False), (args.sources, True))
        ]
    print(report(results))


if __name__ == "__main__":
    main()
