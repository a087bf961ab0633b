"""The quality stream job: one streaming query per source (or per group of sources that share
a reader schema and name one ``query``), all in one SparkSession.

``run(spark, config)`` is what ``driftline run`` and ``jobs/quality_stream.py`` call.
With ``until_idle`` it processes everything available now and returns (a
processing-time trigger plus ``processAllAvailable``: ``availableNow`` would run a
single batch and ignore the per-batch cap); otherwise it runs until stopped, one
micro-batch per ``[windows] trigger``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from driftline.avro.registry import open_registry
from driftline.config import PipelineConfig
from driftline.kafka.end_offsets import EndOffsetProbe
from driftline.kafka.transactional import TransactionalBatchWriter
from driftline.metrics import PipelineMetrics, serve
from driftline.spark import fs, retention
from driftline.spark.batch import BatchProcessor, SourcePlan
from driftline.spark.data_loss import LossCounter
from driftline.spark.decode import FrameDecoder
from driftline.spark.drift import DriftScorer
from driftline.spark.failures import query_failure
from driftline.spark.kafka_source import kafka_stream
from driftline.spark.schema import nullable_fields
from driftline.spark.schema_events import SchemaWatch
from driftline.spark.tables import Warehouse, iso_utc, read_table
from driftline.spark.totals import COUNTS, progress_totals
from driftline.spark.window_checks import WindowChecks
from driftline.spark.window_state import WindowState
from driftline.stats import AlertPolicy
from driftline.stats.breaker import BreakerPolicy
from driftline.stats.policy import BREAKER_KEY

logger = logging.getLogger(__name__)
MARKERS_TOPIC = "driftline.markers"


@dataclass
class SourceSummary:
    read: int = 0
    valid: int = 0
    dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    late: int = 0
    lost: int = 0  # offsets Kafka no longer had (fail_on_data_loss = false); never in read
    offsets_reset: int = 0  # partitions whose offsets went backwards (fail_on_data_loss = false)
    windows: int = 0
    batches: int = 0
    reference_version: str | None = None
    scored_windows: int = 0
    alerts_fired: int = 0
    drifted: dict[str, str] = field(default_factory=dict)  # feature -> first flagged window (ISO)
    # window expectation -> {"windows": judged, "failed": how many failed, "first_failed": window (ISO)}
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the circuit breaker: {"open": bool, "since": window (ISO) or None, "degraded_windows": n}
    breaker: dict[str, Any] = field(default_factory=dict)
    # schema drift, per (kind, field, schema id): events, first and last window, the first's detail
    schema_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.read == self.valid + self.dead_lettered + self.late


@dataclass
class RunSummary:
    pipeline: str
    sources: dict[str, SourceSummary]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "sources": {
                name: {
                    **s.__dict__,
                    "by_reason": dict(sorted(s.by_reason.items())),
                    "reconciles": s.reconciles,
                }
                for name, s in self.sources.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


def source_plan(config: PipelineConfig, source: str, reader=None, run: str = "") -> SourcePlan:
    """The per-batch plan of ``source``: features, rules, windows, where tables go.
    ``reader``: the reader schema (``RegisteredSchema``), for schema drift; without it
    (rows that come decoded) no writer schema id or all-null field is watched. ``run``:
    the query's id, which keys the tables' per-batch Delta commits."""
    spec = config.source(source)
    rules: tuple = ()
    suite = None
    windows = config.windows
    warehouse = Warehouse(config.location(config.warehouse_dir), run=run)
    numeric, categorical = spec.numeric_features, spec.categorical_features
    checks = None
    if getattr(spec, "expectations", None):
        from driftline.expectations import load_expectation_suite
        from driftline.quality.window_rules import window_rules

        suite = config.path(spec.expectations)
        everything = load_expectation_suite(suite)
        rules = tuple(r for r in everything if r.row_level)
        judged = window_rules(everything, numeric=numeric, categorical=categorical, origin=str(suite))
        if judged:
            checks = WindowChecks(config.name, source, suite_name(suite), tuple(judged), warehouse,
                                  round(windows.size.seconds))  # fmt: skip
    drift = drift_scorer(config, source, warehouse)
    fields = [f for f in nullable_fields(reader) if f != spec.event_time] if reader is not None else []
    watch = SchemaWatch.for_source(config.name, source, warehouse, reader, fields,
                                   drift.reference if drift is not None else None)  # fmt: skip
    return SourcePlan(
        pipeline=config.name,
        source=source,
        event_time=spec.event_time,
        numeric=numeric,
        categorical=categorical,
        rules=rules,
        window_seconds=round(windows.size.seconds),
        slide_seconds=round(windows.slide.seconds) if windows.slide else None,
        watermark_seconds=round(windows.watermark.seconds),
        max_future_seconds=round(windows.max_future.seconds),
        dead_letters_retention_seconds=round(config.tables.dead_letters_retention.seconds),
        retention_seconds=round(config.tables.retention.seconds),
        warehouse=warehouse,
        drift=drift,
        suite=suite_name(suite) if suite else None,
        checks=checks,
        schema_watch=watch,
    )


def batch_fingerprint(config: PipelineConfig, source: str, plan: SourcePlan, reader) -> str:
    """SHA-256 of what decides a batch's outputs besides its records: the reader schema
    (subject, version, id), the rule suite's bytes, the reference profile's version and
    contents, the windows, the drift settings and the trailing-bytes check. The
    transactional writers put it in their commit markers, so a batch replayed under
    another configuration is caught
    (:class:`~driftline.kafka.transactional.ReplayMismatch`)."""
    spec = config.source(source)
    suite = config.path(spec.expectations).read_bytes() if spec.expectations else b""
    parts = {
        "reader": [reader.subject, reader.version, reader.schema_id],
        "suite": hashlib.sha256(suite).hexdigest(),
        "reference": [plan.drift.reference.version, plan.drift.reference.fingerprint] if plan.drift else None,
        "reject_trailing_bytes": config.kafka.reject_trailing_bytes,
        "features": [list(plan.numeric), list(plan.categorical)],
        "windows": [plan.window_seconds, plan.slide_seconds, plan.watermark_seconds, plan.max_future_seconds],
        "drift": config.drift.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def suite_name(path: Path) -> str:
    """The suite's ``name`` (GE 1.x suite JSON), else the file's stem: the metrics' ``suite`` label."""
    try:
        name = json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else path.stem


def checkpoint_of(config: PipelineConfig, source: str) -> str:
    """The checkpoint of the query that reads ``source``:
    ``<state_dir>/checkpoints/<pipeline>/<query>`` (a URI or path), where the query is
    the source's own (named after it) unless ``[sources.<name>] query`` names a shared one."""
    return fs.join(config.location(config.state_dir), "checkpoints", config.name, config.query_of(source))


def drift_scorer(config: PipelineConfig, source: str, warehouse: Warehouse) -> DriftScorer | None:
    """The source's drift scorer, or None (with a warning) when it has no reference profile yet."""
    from driftline.reference import find_profile, load_reference

    reference = load_reference(config, source)
    if reference is None:
        logger.warning(
            "no_reference source=%s path=%s: drift is not scored; build one with "
            "driftline baseline -p <pipeline> -s %s -i <training data>",
            source, config.path(config.reference.path) / source, source,
        )  # fmt: skip
        return None
    features = config.source(source).features
    reference = replace(reference, features={k: v for k, v in reference.features.items() if k in features})
    logger.info(
        "reference source=%s version=%s path=%s", source, reference.version, find_profile(config, source)
    )
    return DriftScorer(
        pipeline=config.name,
        source=source,
        reference=reference,
        methods=tuple(config.drift.methods),
        policy=AlertPolicy.from_settings(config.drift),
        warehouse=warehouse,
        breaker=BreakerPolicy(
            config.drift.breaker_open_rate, config.drift.breaker_close_rate, config.drift.breaker_close_after
        ),  # fmt: skip
    )


def query_id(
    spark: SparkSession, checkpoint: Path | str, *, create: bool = True, new: str | None = None
) -> str:
    """The streaming query's id, stable across restarts from ``checkpoint``.

    Spark keeps it in ``<checkpoint>/metadata`` (``{"id": "<uuid>"}``) and uses an
    existing file as is; writing it before the first start lets outputs that must be
    keyed by (query id, batch id), such as Kafka commit markers, know it from batch 0.
    A new checkpoint is a new query: its batch ids restart at 0 under a new key. Read and
    written through Hadoop's FileSystem, so the checkpoint may be on shared storage.
    ``create=False`` returns a new checkpoint's id without writing it; ``new`` is the id a
    new checkpoint gets (default a random one).
    """
    metadata = fs.join(str(checkpoint), "metadata")
    text = fs.read_text(spark, metadata)
    if text is None:
        text = json.dumps({"id": new or str(uuid.uuid4())}) + "\n"
        if create:
            fs.write_text(spark, metadata, text)
    return json.loads(text.splitlines()[0])["id"]


def claim_warehouse(spark: SparkSession, config: PipelineConfig, source: str, query_key: str,
                    checkpoint: str) -> None:  # fmt: skip
    """Record which query writes ``source``'s results in the warehouse, and refuse another.

    A new checkpoint is a new query whose batch ids start at 0 again: over a warehouse
    another query filled, its batches would overwrite and mix with the old ones (and its
    window state would read the old run's versions). The owner is kept in
    ``<warehouse>/_state/owner/<source>.json`` (``{"query_id", "checkpoint"}``), written
    when the source first runs; a query with another id stops with
    :class:`~driftline.errors.ConfigError` before Spark starts it. A warehouse filled
    before owners were recorded has none: the first query to run claims it.
    """
    from driftline.errors import ConfigError

    owner_path = fs.join(config.location(config.warehouse_dir), "_state", "owner", f"{source}.json")
    text = fs.read_text(spark, owner_path)
    if text is None:
        fs.write_text(
            spark, owner_path, json.dumps({"query_id": query_key, "checkpoint": str(checkpoint)}) + "\n"
        )
        return
    owner = json.loads(text)
    if owner["query_id"] != query_key:
        warehouse = config.location(config.warehouse_dir)
        raise ConfigError(
            f"warehouse_dir: {warehouse} holds source {source!r}'s results of another run "
            f"(checkpoint {owner['checkpoint']}, query {owner['query_id']}), but this run's "
            f"checkpoint {checkpoint} is query {query_key}: its batches would mix with that run's. "
            "Restore that checkpoint (state_dir), point warehouse_dir at an empty folder, or delete "
            f"the source's results (the folders source={source} of every table and under _state, "
            f"_state/open/{source} and _state/owner/{source}.json) to start over"
        )


def start_query(
    spark: SparkSession,
    config: PipelineConfig,
    query: str,
    *,
    trigger_seconds: float,
    max_records_per_batch: int | None = None,
    metrics: PipelineMetrics | None = None,
):
    """Start the streaming query ``query`` (a source's own, or one that several sources
    share, :mod:`driftline.spark.shared_query`) and return it."""
    members = config.queries[query]
    checkpoint = checkpoint_of(config, members[0])
    query_key = query_id(spark, checkpoint, create=False)  # keys the commit markers of both writers
    for source in members:  # before a new checkpoint is written
        claim_warehouse(spark, config, source, query_key, checkpoint)
    query_id(spark, checkpoint, new=query_key)  # the id claimed, unless the metrics listener wrote one
    topics = list(dict.fromkeys(config.topic(source) for source in members))
    stream = kafka_stream(spark, config, topics, max_offsets_per_trigger=max_records_per_batch)
    registry = open_registry(config.path(config.schemas_dir), config.kafka.schema_registry_url,
                             config.kafka.schema_registry_client())  # fmt: skip
    spec = config.source(members[0])  # every member has this reader schema (checked with the config)
    decoder = FrameDecoder(registry, registry.get(spec.subject, spec.schema_version),
                           reject_trailing=config.kafka.reject_trailing_bytes)  # fmt: skip
    processors = [
        _source_processor(spark, config, name, decoder, query_key, checkpoint, metrics) for name in members
    ]
    if len(members) == 1:
        function = processors[0]
    else:
        from driftline.spark.fused import FusedCensus
        from driftline.spark.shared_query import SharedQueryProcessor

        topics = [config.topic(source) for source in members]
        fused = FusedCensus.of(spark, [p.plan for p in processors], topics)
        if fused is None:
            logger.warning("shared_query query=%s census=per_source reason=event_time_differs", query)
        pairs = list(zip(topics, processors, strict=True))
        function = SharedQueryProcessor(f"{config.name}.{query}", decoder, pairs, fused)
    return (
        stream.writeStream.queryName(f"{config.name}.{query}")
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{trigger_seconds} seconds")
        .foreachBatch(function)
        .start()
    )


def _source_processor(spark: SparkSession, config: PipelineConfig, source: str, decoder: FrameDecoder,
                      query_key: str, checkpoint: str,
                      metrics: PipelineMetrics | None) -> BatchProcessor:  # fmt: skip
    """One source's batch processor: its plan, its dead-letter and alert writers (keyed by
    the query's id), its loss counter, and its metrics' fixed series."""
    spec = config.source(source)
    bootstrap = config.kafka.bootstrap_servers
    topic = config.topic(source)
    writer = TransactionalBatchWriter(
        bootstrap=bootstrap,
        topic=config.dead_letter_topic(source),
        markers_topic=config.kafka.topic_prefix + MARKERS_TOPIC,
        name=f"{config.name}.{source}.dlq.{query_key}",
        settings=config.kafka.librdkafka("producer"),
        partitions=spec.partitions,
    )
    plan = source_plan(config, source, decoder.reader, run=query_key)
    writer.fingerprint = batch_fingerprint(config, source, plan, decoder.reader)
    if plan.rules:
        from driftline.spark.rules import check_regexes

        check_regexes(spark, plan.rules, origin=str(config.path(spec.expectations)))
    if plan.drift is not None:
        plan.drift.alerts = TransactionalBatchWriter(
            bootstrap=bootstrap,
            topic=config.kafka.topic_prefix + config.drift.alerts_topic,
            markers_topic=config.kafka.topic_prefix + MARKERS_TOPIC,
            name=f"{config.name}.{source}.alerts.{query_key}",
            settings=config.kafka.librdkafka("producer"),
            partitions=1,
            fingerprint=writer.fingerprint,
        )
        plan.drift.metrics = metrics
        if metrics is not None:
            plan.drift.export_saved_state(spark)  # a firing alert stays firing across a restart
    if metrics is not None:
        metrics.reference(source, plan.drift.reference.version if plan.drift is not None else None)
        if (link := config.report.link(config.name, source)) is not None:
            metrics.report_link(source, link)
        metrics.source_topics(source, [topic])
        metrics.schema_series(source, plan.schema_watch.series())
    loss = None
    if not config.kafka.fail_on_data_loss:
        probe = EndOffsetProbe(_lag_consumer(config), bootstrap=bootstrap)
        loss = LossCounter(source, str(checkpoint), probe, topics=[topic])  # a shared query reads others too
    return BatchProcessor(plan, writer, metrics, decoder, loss)


def run(
    spark: SparkSession,
    config: PipelineConfig,
    *,
    until_idle: bool = True,
    sources: list[str] | None = None,
    max_records_per_batch: int | None = None,
    metrics: PipelineMetrics | None = None,
    when_idle: Callable[[], Any] | None = None,
) -> RunSummary:
    """Run the job for ``sources`` (default all) and return the summary of their tables.

    Metrics: with ``metrics`` given, they are fed and the caller serves them; else, when
    ``[metrics] enabled``, the job serves its own on ``[metrics] address:port`` while it runs.
    ``when_idle`` (with ``until_idle``) is called once everything available has been
    processed, while the queries still run (the demo waits for its alerts there).
    """
    asked = sources or list(config.sources)
    for name in asked:
        config.source(name)
    queries = list(dict.fromkeys(config.query_of(name) for name in asked))
    names = [source for query in queries for source in config.queries[query]]
    if extra := [name for name in names if name not in asked]:
        logger.info("shared_query sources=%s: run too, they share a streaming query with %s",
                    ",".join(extra), ",".join(asked))  # fmt: skip
    check_topics(spark, config, names)
    trigger = 0.0 if until_idle else config.windows.trigger.seconds
    spark.streams.resetTerminated()  # else awaitAnyTermination returns at once after an earlier run
    with ExitStack() as stack:
        served = metrics is None and config.metrics.enabled
        if served:
            metrics = PipelineMetrics.for_pipeline(config)
            exporter = serve(metrics.registry, address=config.metrics.address, port=config.metrics.port)
            stack.callback(exporter.close)
        if metrics is not None:
            _monitor(stack, spark, config, names, metrics)
        started = []
        try:
            for query in queries:
                streaming = start_query(spark, config, query, trigger_seconds=trigger,
                                        max_records_per_batch=max_records_per_batch,
                                        metrics=metrics)  # fmt: skip
                started.append(streaming)
            try:
                if until_idle:
                    for streaming in started:
                        streaming.processAllAvailable()
                    retention.sweep_unswept(spark)  # a short scheduled run still expires old rows
                    if when_idle is not None:
                        when_idle()
                else:
                    spark.streams.awaitAnyTermination()
            except StreamingQueryException:
                pass  # reported below from query.exception(), as a DriftlineError with its own exit code
        finally:
            for streaming in started:
                streaming.stop()
            failed = [q for q in started if q.exception() is not None]
            if metrics is not None:  # the listener's events are asynchronous: say it now as well
                for streaming, query in zip(started, queries, strict=False):
                    for name in config.queries[query]:
                        metrics.query_terminated(name, failed=streaming.exception() is not None)
            if served and failed:
                _linger(config)
    for streaming, query in zip(started, queries, strict=False):
        if streaming.exception() is not None:
            members = config.queries[query]
            raise query_failure(members, streaming.exception(), query=query,
                                checkpoint=str(checkpoint_of(config, members[0])),
                                topics=[config.topic(name) for name in members])  # fmt: skip
    return summarize(spark, config, names)


def check_topics(spark: SparkSession, config: PipelineConfig, sources: list[str]) -> None:
    """Before any query starts: every source's topic exists (else Spark's first batch fails
    with a stack trace and the other sources' queries are stopped half-way), and is the
    topic its checkpoint was made for (:mod:`driftline.spark.topic_identity`)."""
    from driftline.errors import JobError
    from driftline.kafka.clients import make_admin, topic_ids
    from driftline.spark.topic_identity import check_topic_identity

    admin = make_admin(config.kafka.bootstrap_servers, config.kafka.librdkafka("admin"))
    topics = {source: config.topic(source) for source in sources}
    ids = topic_ids(admin, topics.values())
    absent = [source for source, topic in topics.items() if ids[topic] is None]
    if absent:
        have = [source for source in sources if source not in absent]
        listed = ", ".join(f"{source!r} ({topics[source]!r})" for source in absent)
        only = f"; to run the others alone: {' '.join('--source ' + s for s in have)}" if have else ""
        raise JobError(
            f"no topic on {config.kafka.bootstrap_servers} for source(s) {listed}: ingest into them first "
            f"(driftline ingest -p <pipeline> -s <source> -i <file>) or check [kafka] topic_prefix{only}"
        )
    for query in dict.fromkeys(config.query_of(source) for source in sources):
        members = config.queries[query]
        current = {topics[m]: ids[topics[m]] for m in members}
        check_topic_identity(spark, ", ".join(members), checkpoint_of(config, members[0]), current,
                             fail_on_data_loss=config.kafka.fail_on_data_loss)  # fmt: skip


def _linger(config: PipelineConfig) -> None:
    """Keep serving after a failure for ``[metrics] linger_on_failure`` so Prometheus scrapes it
    (query_up 0, the failure counted, an unreconciled gap) before the exporter goes away."""
    seconds = config.metrics.linger_on_failure.seconds
    if seconds > 0:
        logger.error("query_failed: metrics stay up for %.0fs so the failure is scraped", seconds)
        time.sleep(seconds)


def _monitor(stack: ExitStack, spark, config: PipelineConfig, names: list[str], metrics) -> None:
    """A query listener and a lag monitor for the run's queries, removed when it ends."""
    from driftline.spark.monitoring import LaggingSource, LagMonitor, MetricsListener

    by_query: dict[str, list[str]] = {}
    for query in dict.fromkeys(config.query_of(name) for name in names):
        members = config.queries[query]
        by_query[f"{config.name}.{query}"] = members
        by_query[query_id(spark, checkpoint_of(config, members[0]))] = members
    listener = MetricsListener(metrics, by_query)
    spark.streams.addListener(listener)
    stack.callback(spark.streams.removeListener, listener)
    lagging = [LaggingSource(name, (config.topic(name),), str(checkpoint_of(config, name))) for name in names]
    lag = LagMonitor(
        spark, metrics, listener, lagging, _lag_consumer(config),
        bootstrap=config.kafka.bootstrap_servers, interval=config.metrics.lag_interval.seconds,
    )  # fmt: skip
    stack.callback(lag.stop)
    lag.start()


def _lag_consumer(config: PipelineConfig):
    from confluent_kafka import Consumer

    from driftline.kafka.clients import client_config

    def make(**overrides):
        settings = {"group.id": "driftline-lag", "enable.auto.commit": False}
        return Consumer(client_config(config.kafka.bootstrap_servers, settings,
                                      config.kafka.librdkafka("consumer"), overrides))  # fmt: skip

    return make


def summarize(spark: SparkSession, config: PipelineConfig, sources: list[str]) -> RunSummary:
    """Totals over every batch each source's query has committed: the running totals in
    the newest state version's commit record (one small file, whatever the uptime)."""
    warehouse = Warehouse(config.location(config.warehouse_dir))
    out: dict[str, SourceSummary] = {}
    for source in sources:
        summary = SourceSummary()
        commit = WindowState(spark, warehouse.root, source).latest_commit()
        totals = commit.totals if commit is not None else None
        if totals is None:  # no state yet, or one whose commits predate running totals
            totals = progress_totals(spark, warehouse, source) or {}
        summary.batches = totals.get("batches", 0)
        for key in COUNTS:
            setattr(summary, key, totals.get(key, 0))
        summary.by_reason.update(totals.get("by_reason") or {})
        breaker = (commit.policy or {}).get(BREAKER_KEY) if commit is not None else None
        if breaker:
            summary.breaker = {"open": breaker["open"], "since": breaker["since"],
                               "degraded_windows": breaker["degraded_windows"]}  # fmt: skip
        stats = read_table(spark, warehouse.table("feature_stats"), source)
        if stats is not None:
            summary.windows = stats.select("window_start").distinct().count()
        _summarize_drift(spark, warehouse, source, summary)
        _summarize_expectations(spark, warehouse, source, summary)
        _summarize_schema_events(spark, warehouse, source, summary)
        out[source] = summary
    return RunSummary(config.name, out)


def _summarize_expectations(spark, warehouse: Warehouse, source: str, summary: SourceSummary) -> None:
    results = read_table(spark, warehouse.table("quality_results"), source)
    if results is None:
        return
    failed = F.when(~F.col("success"), F.col("window_start"))
    per_rule = results.groupBy("expectation").agg(
        F.count(F.lit(1)).alias("windows"),
        F.sum(F.when(F.col("success"), 0).otherwise(1)).alias("failed"),
        F.min(failed).alias("first_failed"),
    )
    for row in per_rule.orderBy("expectation").collect():
        first = row["first_failed"]
        summary.expectations[row["expectation"]] = {
            "windows": int(row["windows"]), "failed": int(row["failed"]),
            "first_failed": iso_utc(first) if first is not None else None,
        }  # fmt: skip


def _summarize_schema_events(spark, warehouse: Warehouse, source: str, summary: SourceSummary) -> None:
    events = read_table(spark, warehouse.table("schema_events"), source)
    if events is None:
        return
    first = F.min_by(F.col("detail"), F.struct(F.col("batch_id"), F.col("window_start")))
    per_kind = events.groupBy("kind", "field", "schema_id").agg(
        F.count(F.lit(1)).alias("events"), F.min("window_start").alias("first_window"),
        F.max("window_start").alias("last_window"), F.min("batch_id").alias("first_batch"),
        first.alias("detail"),
    )  # fmt: skip
    for row in per_kind.orderBy("first_batch", "kind", "field", "schema_id").collect():
        summary.schema_events.append({
            "kind": row["kind"], "field": row["field"], "schema_id": row["schema_id"],
            "events": int(row["events"]),
            "first_window": iso_utc(row["first_window"]) if row["first_window"] is not None else None,
            "last_window": iso_utc(row["last_window"]) if row["last_window"] is not None else None,
            "first_batch": int(row["first_batch"]), "detail": row["detail"],
        })  # fmt: skip


def _summarize_drift(spark, warehouse: Warehouse, source: str, summary: SourceSummary) -> None:
    scores = read_table(spark, warehouse.table("drift_scores"), source)
    if scores is None:
        return
    summary.scored_windows = scores.select("window_start").distinct().count()
    versions = [r[0] for r in scores.select("reference_version").distinct().collect()]
    summary.reference_version = ",".join(sorted(versions)) or None
    alerts = read_table(spark, warehouse.table("alerts"), source)
    if alerts is None:
        return
    fired = alerts.where(F.col("event") == "fired")
    summary.alerts_fired = fired.count()
    for row in fired.groupBy("feature").agg(F.min("first_flagged_window").alias("first")).collect():
        summary.drifted[row["feature"]] = iso_utc(row["first"])


__all__ = ["RunSummary", "SourceSummary", "run", "source_plan", "start_query"]
