"""``make demo``: the whole pipeline on the embedded defaults, with a readable ending.

Start the embedded broker; build each source's reference profile from clean "training"
data with ``driftline baseline``; generate the three demo sources (one per input
format) spanning one hour of event time, with corrupt records and drift injected into
chosen features from half-way (a mean shift, a variance change, a null-rate rise and a
new category; and the fraud model's score, ``risk_score``, shifting with the amounts:
prediction drift) or from 35 minutes (clickstream's ``referrer`` going all-null, a
schema change upstream), and ingest them; add what a buggy producer would send straight
to Kafka (frames with an unknown schema id, truncated, not framed), records that break
the expectation suites and, for payments, records from an old producer still writing
schema v1; run the quality stream job until idle; and show per source what was read,
dead-lettered (by reason), computed per window, the window expectations, the schema
events, and which features drifted in which window against the truth: injected ones
found, untouched ones quiet.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftline import tables
from driftline.config import load_pipeline
from driftline.demo import (
    FRAME_CORRUPTIONS,
    Corruption,
    Drift,
    corrupt_frame,
    generator_for,
    write_records,
)
from driftline.demo.alerting import DemoAlerting
from driftline.ingest.run import ingest_file
from driftline.kafka.broker import EmbeddedBroker, free_port, port_is_free

logger = logging.getLogger(__name__)

#: One format per source, so the demo exercises every reader.
DEMO_INPUTS = {"payments": "jsonl", "sensors": "csv", "clickstream": "parquet"}
CORRUPT_RATE = 0.02
#: Per source: a field and a value that breaks the source's expectation suite.
RULE_BREAKERS = {
    "payments": ("amount", -5.0),
    "sensors": ("temperature_c", 900.0),
    "clickstream": ("scroll_depth", 3.0),
}
BYPASS_RECORDS = 60  # records a buggy producer sends straight to each topic
LEGACY_RECORDS = {"payments": 30}  # records an old producer sends with the source's first schema version
SPAN = timedelta(hours=1)  # event time the demo stream covers, whatever the record count
REFERENCE_RECORDS = 20_000
#: (injected, flagged) -> verdict
VERDICTS = {
    (True, True): "found",
    (True, False): "MISSED",
    (False, False): "quiet",
    (False, True): "FALSE ALARM",
}


def demo_config(config):
    """The pipeline with every folder of the demo's own under ``<state_dir>/demo``.

    The demo runs its own broker, so its checkpoints, tables and references belong with
    it: a later ``driftline run`` of the same pipeline on another broker finds neither
    offsets that broker never had nor tables of the demo's run mixed with its own.
    """
    root = config.path(config.state_dir) / "demo"
    return config.model_copy(
        update={
            "state_dir": str(root),
            "warehouse_dir": str(root / "warehouse"),
            "reference": config.reference.model_copy(update={"path": str(root / "references")}),
        }
    )


def demo_drifts(records: int) -> dict[str, tuple[Drift, ...]]:
    """The drift the demo injects, from half-way through the stream (a window boundary);
    clickstream's referrer goes all-null from 7/12 (35 minutes, another boundary)."""
    start = records // 2
    return {
        "payments": (
            Drift("mean_shift", "amount", start, 1.0),
            Drift("new_category", "country", start, 0.15, "BR"),
            # the fraud model's output, a feature like any other: prediction drift
            Drift("mean_shift", "risk_score", start, 0.8),
        ),
        "sensors": (
            Drift("variance_change", "vibration_mm_s", start, 2.0),
            Drift("null_rate", "pressure_kpa", start, 0.3),
        ),
        "clickstream": (
            Drift("mean_shift", "dwell_ms", start, 0.8),
            # the tracking tag was removed: all-null from 35 of the 60 minutes, so two of its
            # windows close before the watermark stops (10 minutes behind the newest valid record)
            Drift("null_rate", "referrer", records * 7 // 12, 1.0),
        ),
    }


def run_demo(pipeline: Path, *, records: int, output_dir: Path, keep_broker: bool = False) -> bool:
    """Run the demo; return whether every source's counts reconciled."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and CI: wide enough for the tables
    config = demo_config(load_pipeline(pipeline))
    root = config.path(config.state_dir)
    broker = EmbeddedBroker(root / "broker", port=9092 if port_is_free("127.0.0.1", 9092) else free_port())
    broker.stop()  # a broker left over from an interrupted demo
    shutil.rmtree(
        root, ignore_errors=True
    )  # each demo starts afresh: topics, checkpoints, tables, references
    state = broker.start()
    console.print(f"[bold]embedded broker[/] Apache Kafka (KRaft) at {state.bootstrap} (pid {state.pid})")
    config = config.with_kafka(bootstrap_servers=state.bootstrap)
    summaries, baselines = [], {}
    interval = SPAN / records
    try:
        drifts = demo_drifts(records)
        for seed, (source, fmt) in enumerate(DEMO_INPUTS.items()):
            baselines[source] = _baseline(config, source, seed, output_dir)
            console.print(f"reference profile for {source}: {baselines[source].to_json()}")
            kinds = ("missing_field",) if fmt == "parquet" else None
            corruption = Corruption(CORRUPT_RATE, kinds) if kinds else Corruption(CORRUPT_RATE)
            generator, names = generator_for(
                config, source, seed=seed, corruption=corruption, drifts=drifts[source], interval=interval
            )
            path = write_records(output_dir / "input" / f"{source}.{fmt}", generator.records(records), names)
            summary = ingest_file(config, source, path)
            summaries.append(summary)
            console.print(f"ingested {path} -> {config.topic(source)}: {summary.to_json()}")
            clean, _ = generator_for(config, source, seed=seed, drifts=drifts[source], interval=interval)
            _bypass_ingest(config, source, clean, records)
        _show(console, summaries, config)
        with DemoAlerting(config, root / "prometheus") as alerting:
            style = "green" if alerting.available else "yellow"
            console.print(f"[bold]observability[/] [{style}]{alerting.describe()}[/]")
            console.print("[bold]running the quality stream job until idle[/] (local Spark) ...")
            delivered: list[dict] = []  # collected while the queries still run (no "query down" yet)
            job = _run_job(
                config, alerting.metrics, lambda: delivered.extend(alerting.deliveries(timeout=30))
            )
            observability = alerting.as_dict() | {"delivered": delivered}
    finally:
        if not keep_broker:
            broker.stop()
    _show_job(console, job, config, observability)
    truth = drift_truth(config, drifts, interval, delivered if observability["prometheus"] else None)
    _show_drift(console, truth)
    _show_deliveries(console, observability)
    output_dir.mkdir(parents=True, exist_ok=True)
    warehouse = config.path(config.warehouse_dir)
    result = {
        "pipeline": config.name,
        "references": {name: b.as_dict() for name, b in baselines.items()},
        "ingest": {s.source: s.as_dict() | {"reconciles": s.reconciles} for s in summaries},
        "job": {
            name: source | {"alerts_delivered": _delivered_count(observability, name)}
            for name, source in job.as_dict()["sources"].items()
        },
        "drift": truth,
        "tables": {
            name: str(warehouse / name)
            for name in (
                "feature_stats",
                "drift_scores",
                "alerts",
                "quality_results",
                "schema_events",
                "dead_letters",
            )
        },
        "alerts_topic": config.kafka.topic_prefix + config.drift.alerts_topic,
        "alerting": observability,
        "how_to_query": {
            "driftline_sql": f'driftline sql -p {pipeline} "select source, expectation, count(*) as failed '
            'from quality_results where not success group by source, expectation"',
            "pandas": f"deltalake.DeltaTable('{warehouse / 'drift_scores'}').to_pandas()  # any table above",
            "spark_sql": f"spark.read.format('delta').load('{warehouse / 'alerts'}')"
            ".createOrReplaceTempView('alerts'); "
            'spark.sql("SELECT source, feature, method, window_start, score '
            "FROM alerts WHERE event = 'fired'\")  # a session with Delta's extension and catalog",
            "format": "Delta Lake; partitions source=<source>/batch_id=<n> "
            "(feature_stats: source=<source>/window_key=<start>)",
        },
    }
    from driftline.report import write_report

    report = write_report(config, output_dir / "report.html")
    result["report"] = str(report.path)
    (output_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(f"summary written to {output_dir / 'summary.json'}")
    console.print(f"[bold]drift report[/] written to {report.path} ({report.charts} charts; open it in "
                  "a browser, it fetches nothing)")  # fmt: skip
    console.print(f"the demo's tables are under {warehouse}, its broker data and checkpoints under "
                  f"{config.path(config.state_dir)} (the next demo starts afresh)")  # fmt: skip
    ingest_ok = all(s.reconciles and not s.undelivered for s in summaries)
    drift_ok = all(
        f["verdict"] in ("found", "quiet") for features in truth.values() for f in features.values()
    )
    return ingest_ok and drift_ok and all(s.reconciles for s in job.sources.values())


def _baseline(config, source: str, seed: int, output_dir: Path):
    """A reference profile from clean training data (another seed, no drift, no corruption)."""
    from driftline.reference import baseline_from_file

    generator, names = generator_for(config, source, seed=seed + 100)
    path = write_records(
        output_dir / "input" / f"{source}-reference.parquet", generator.records(REFERENCE_RECORDS), names
    )
    return baseline_from_file(config, source, path)


def drift_truth(
    config, drifts: dict[str, tuple[Drift, ...]], interval: timedelta, deliveries: list[dict] | None = None
) -> dict[str, dict]:
    """Per source and feature: what was injected (kind, from when), what the job flagged
    (first flagged window, the methods that fired), the verdict (``found``, ``MISSED``,
    ``quiet`` or ``FALSE ALARM``) and, with Prometheus running, the receivers the
    Alertmanager delivered its drift alert to (``None`` without Prometheus)."""

    from driftline.demo.generator import DEFAULT_START

    warehouse = config.path(config.warehouse_dir)
    alerts = tables.read(warehouse / "alerts")
    fired = alerts[alerts["event"] == "fired"] if len(alerts) else alerts
    out: dict[str, dict] = {}
    for source, spec in config.sources.items():
        injected = {d.feature: d for d in drifts.get(source, ())}
        out[source] = {}
        for feature in spec.features:
            mine = fired[(fired["source"] == source) & (fired["feature"] == feature)] if len(fired) else fired
            drift = injected.get(feature)
            flagged = not mine.empty
            verdict = VERDICTS[(drift is not None, flagged)]
            out[source][feature] = {
                "injected": None if drift is None else {
                    "kind": drift.kind, "magnitude": drift.magnitude,
                    "from": _iso(DEFAULT_START + drift.start * interval),
                },
                "first_flagged_window": _iso(mine["first_flagged_window"].min()) if flagged else None,
                "alerted_in_window": _iso(mine["window_start"].min()) if flagged else None,
                "methods": sorted(mine["method"]) if flagged else [],
                "verdict": verdict,
                "delivered_to": None if deliveries is None else sorted({
                    d["receiver"] for d in deliveries
                    if d["source"] == source and d["feature"] == feature and d["status"] == "firing"
                }),
            }  # fmt: skip
    return out


def _iso(moment) -> str:
    """ISO-8601 with ``Z``; naive times (from the tables) are UTC."""
    return moment.isoformat().replace("+00:00", "") + "Z"


def _clock(moment: str | None) -> str:
    return moment[11:16] if moment else "-"


def _show_drift(console: Console, truth: dict[str, dict]) -> None:
    table = Table(title="drift against the reference: injected truth vs. what the job flagged")
    columns = [
        "source",
        "feature",
        "injected",
        "from",
        "first flagged window",
        "alert in",
        "methods",
        "verdict",
    ]
    for column in [*columns, "delivered to"]:
        table.add_column(column)
    colours = {"found": "green", "quiet": "dim", "MISSED": "red", "FALSE ALARM": "red"}
    for source, features in truth.items():
        for feature, f in features.items():
            injected = f["injected"]
            table.add_row(
                source, feature,
                f"{injected['kind']} {injected['magnitude']:g}" if injected else "-",
                injected["from"][11:16] if injected else "-",
                _clock(f["first_flagged_window"]), _clock(f["alerted_in_window"]),
                ", ".join(f["methods"]) or "-", f"[{colours[f['verdict']]}]{f['verdict']}[/]",
                "n/a" if f["delivered_to"] is None else ", ".join(f["delivered_to"]) or "-",
            )  # fmt: skip
    console.print(table)


def _delivered_count(observability: dict, source: str) -> int | None:
    """Distinct firing alerts of ``source`` Alertmanager delivered (None: no Prometheus ran)."""
    if not observability["prometheus"]:
        return None
    delivered = observability["delivered"]
    return len({(d["alertname"], d["feature"], d["method"]) for d in delivered
                if d["source"] == source and d["status"] == "firing"})  # fmt: skip


def _show_deliveries(console: Console, observability: dict) -> None:
    if not observability["prometheus"]:
        console.print(f"[yellow]alerts were not delivered: {observability['unavailable']}[/]")
        return
    delivered = observability["delivered"]
    table = Table(
        title=f"alerts delivered by Alertmanager {observability['alertmanager']} ({len(delivered)})"
    )
    for column in ("receiver", "alert", "severity", "source", "feature", "method", "summary"):
        table.add_column(column)
    for d in sorted(delivered, key=lambda d: (d["source"] or "", d["feature"] or "", d["receiver"])):
        table.add_row(d["receiver"], d["alertname"], d["severity"], d["source"], d["feature"] or "-",
                      d["method"] or "-", d["summary"] or "")  # fmt: skip
    console.print(table)


def _bypass_ingest(config, source: str, generator, records: int) -> None:
    """What a buggy producer sends: damaged frames and suite-breaking records, straight to Kafka."""
    import numpy as np

    from driftline.avro.codec import AvroEncoder
    from driftline.avro.registry import FileSchemaRegistry
    from driftline.kafka.clients import make_producer, produce

    registry, subject = FileSchemaRegistry(config.path(config.schemas_dir)), config.source(source).subject
    encoder, rng = AvroEncoder(registry.get(subject)), np.random.default_rng(99)
    field, bad_value = RULE_BREAKERS[source]
    producer = make_producer(config.kafka.bootstrap_servers, config.kafka.librdkafka("producer"))
    for n, record in enumerate(generator.records(BYPASS_RECORDS, first_index=records)):
        if n % 2:
            value = encoder.encode({**record.value, field: bad_value})
        else:
            value = corrupt_frame(FRAME_CORRUPTIONS[n // 2 % 3], encoder.encode(record.value), rng)
        produce(producer, config.topic(source), value=value)
    versions = registry.versions(subject)
    if LEGACY_RECORDS.get(source) and len(versions) > 1:  # an old producer, still on the first version
        legacy = registry.get(subject, versions[0])
        old = AvroEncoder(legacy)
        for record in generator.records(LEGACY_RECORDS[source], first_index=records + BYPASS_RECORDS):
            fields = {k: v for k, v in record.value.items() if k in legacy.field_names}
            produce(producer, config.topic(source), value=old.encode(fields))
    producer.flush(30)


def _run_job(config, metrics, when_idle):
    from driftline.spark.job import run
    from driftline.spark.session import build_session

    spark = build_session(f"driftline-{config.name}-demo")
    try:
        return run(spark, config, until_idle=True, metrics=metrics, when_idle=when_idle)
    finally:
        spark.stop()


def _show_job(console: Console, job, config, observability: dict) -> None:
    table = Table(title=f"pipeline {config.name}: quality stream job")
    columns = ["source", "read", "valid", "dead-lettered", "by reason", "late", "windows", "batches",
               "alerts fired", "alerts delivered", "circuit breaker", "reconciles"]  # fmt: skip
    for column in columns:
        table.add_column(column)
    for name, s in job.sources.items():
        reasons = "\n".join(f"{k}={v}" for k, v in sorted(s.by_reason.items()))
        mark = "[green]yes[/]" if s.reconciles else "[red]NO[/]"
        delivered = _delivered_count(observability, name)
        table.add_row(name, str(s.read), str(s.valid), str(s.dead_lettered), reasons, str(s.late),
                      str(s.windows), str(s.batches), str(s.alerts_fired),
                      "n/a" if delivered is None else str(delivered), _breaker_text(s.breaker),
                      mark)  # fmt: skip
    console.print(table)
    _show_windows(console, config)
    _show_expectations(console, job)
    _show_schema_events(console, job)


def _show_expectations(console: Console, job) -> None:
    """Per source, each window expectation: windows judged and failed (from quality_results)."""
    table = Table(title="window expectations (quality_results)")
    for column in ("source", "expectation", "windows", "failed", "first failed window"):
        table.add_column(column)
    for name, s in job.sources.items():
        for expectation, result in sorted(s.expectations.items()):
            failed = f"[red]{result['failed']}[/]" if result["failed"] else "0"
            table.add_row(name, expectation, str(result["windows"]), failed, result["first_failed"] or "")
    if table.row_count:
        console.print(table)


def _breaker_text(breaker: dict) -> str:
    """The circuit breaker's state in the run summary, in words."""
    if not breaker:
        return "-"  # no window scored yet
    state = f"[red]open since {_clock(breaker['since'])}[/]" if breaker["open"] else "closed"
    return f"{state}, {breaker['degraded_windows']} degraded"


def _show_schema_events(console: Console, job) -> None:
    """Per source, each schema drift event: kind, field or schema id, how often, from when."""
    table = Table(title="schema drift (schema_events)")
    for column in ("source", "kind", "field / schema id", "events", "first window", "detail"):
        table.add_column(column)
    for name, s in job.sources.items():
        for e in s.schema_events:
            what = e["field"] or (f"id {e['schema_id']}" if e["schema_id"] is not None else "more ids")
            table.add_row(name, e["kind"], what, str(e["events"]), _clock(e["first_window"]), e["detail"])
    if table.row_count:
        console.print(table)


def _show_windows(console: Console, config) -> None:
    """Per source, the first numeric feature's statistics per window (from feature_stats)."""

    stats = tables.read(config.path(config.warehouse_dir) / "feature_stats").drop(columns=["sketch"])
    for source, spec in config.sources.items():
        feature = next(f for f, c in spec.features.items() if c.kind == "numeric")
        rows = stats[(stats["source"] == source) & (stats["feature"] == feature)].sort_values("window_start")
        table = Table(title=f"{source}.{feature} per 5-minute window (feature_stats)")
        for column in ("window", "rows", "nulls", "mean", "stddev", "p05", "p50", "p95", "late", "final"):
            table.add_column(column, justify="right")
        for row in rows.itertuples():
            numbers = [f"{getattr(row, c):.2f}" for c in ("mean", "stddev", "p05", "p50", "p95")]
            final = "yes" if row.is_final else "open"
            counts = [str(row.rows), str(row.nulls)]
            table.add_row(f"{row.window_start:%H:%M}", *counts, *numbers, str(row.late_rows), final)
        console.print(table)


def _show(console: Console, summaries, config) -> None:
    table = Table(title=f"pipeline {config.name}: ingest")
    for column in ("source", "read", "valid", "dead-lettered", "by reason", "reconciles"):
        table.add_column(column)
    for s in summaries:
        reasons = "\n".join(f"{k}={v}" for k, v in sorted(s.by_reason.items()))
        mark = "[green]yes[/]" if s.reconciles and not s.undelivered else "[red]NO[/]"
        table.add_row(s.source, str(s.read), str(s.valid), str(s.dead_lettered), reasons, mark)
    console.print(table)
