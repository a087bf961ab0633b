"""The pipeline's Prometheus metrics: one registry per job driver, one method per event.

Importable without Spark or Kafka: the Spark side (:mod:`driftline.spark.listener`,
the batch processor, the lag monitor) calls these methods on the driver, and the
exporter (:mod:`driftline.metrics.exporter`) serves :attr:`PipelineMetrics.registry`.

Conventions (https://prometheus.io/docs/practices/naming/): every name starts with
``driftline_``, carries its unit (``_seconds``, ``_records``, ``_timestamp_seconds``)
and counters end in ``_total``. Every series has ``pipeline`` and ``source`` labels;
the other labels are bounded by the pipeline definition, never by the data:

============  ============================================================================
``outcome``   ``valid`` | ``dead_lettered`` | ``late`` (records); ``success`` | ``failure``
``reason``    a :class:`~driftline.quality.reasons.ReasonCode` value
``topic``     a source topic named in the pipeline file
``feature``   a feature named in the pipeline file
``method``    a drift method named in ``[drift] methods``
``suite``     the source's expectation suite name
``event``     ``fired`` | ``resolved``
============  ============================================================================

The full catalogue with PromQL examples is in ``docs/metrics.md``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, disable_created_metrics

from driftline import __version__
from driftline.quality.reasons import ReasonCode, Stage

disable_created_metrics()  # no *_created series: they double the output and nobody queries them

#: Batch durations seen here run from ~1 s (empty) to minutes (catch-up after an outage).
BATCH_SECONDS_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, float("inf"))
OUTCOMES = ("valid", "dead_lettered", "late")
#: The reasons the job itself dead-letters for (ingest-stage reasons never reach it).
JOB_REASONS = tuple(r.value for r in ReasonCode if r.stage is not Stage.INGEST)


@dataclass(frozen=True)
class BatchCounts:
    """One micro-batch's counts, as the batch processor reconciled them.

    ``read == valid + dead_lettered + late`` holds for every batch the processor
    commits; ``by_reason`` splits ``dead_lettered`` (LATE_DATA is counted in ``late``).
    """

    read: int
    valid: int
    dead_lettered: int
    late: int
    by_reason: Mapping[str, int]
    rule_failures: Mapping[str, int]  # expectation (rule id) -> rows it rejected first
    rows_checked: int  # rows the row-level expectations were evaluated on
    max_event_time: datetime | None
    watermark: datetime | None
    lost: Mapping[str, int] = field(default_factory=dict)  # topic -> offsets Kafka no longer had
    offsets_reset: Mapping[str, int] = field(default_factory=dict)  # topic -> partitions gone backwards


@dataclass(frozen=True)
class DriftObservation:
    """The newest closed window's result for one (feature, method)."""

    feature: str
    method: str
    score: float | None
    effect: float | None  # the size compared with the threshold (PSI: the score itself)
    p_adjusted: float | None  # None for PSI and JS, which have no test
    threshold: float
    drifted: bool
    alert_active: bool
    window_end: datetime
    first_flagged: datetime | None  # start of the first flagged window of the active alert


@dataclass(frozen=True)
class AlertEvent:
    """An alert policy event of one (feature, method): ``fired`` (with its episode's Kafka
    offsets label) or ``resolved`` (``offsets`` None)."""

    feature: str
    method: str
    event: str
    offsets: str | None = None


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class SnapshotRegistry(CollectorRegistry):
    """A registry whose scrape reads every metric under :attr:`updates`, the lock the job's
    updates of several metrics at once hold (:meth:`PipelineMetrics.drift_scored`): a
    scrape sees all of such an update or none of it.

    prometheus-client's own registry reads one metric after another, in the order they
    were registered, while the job may be changing them: a scrape could read an alert's
    ``driftline_drift_alert_active`` as 1, then its offsets series after they were removed
    on resolution. Prometheus' ``name[]`` filtered scrapes (unused by Prometheus itself)
    bypass the lock."""

    def __init__(self) -> None:
        super().__init__()
        self.updates = threading.RLock()

    def collect(self) -> Iterable[Metric]:
        with self.updates:
            families = list(super().collect())
        yield from families


class PipelineMetrics:
    """Every metric driftline exports, registered in :attr:`registry` (not the global one)."""

    def __init__(
        self,
        pipeline: str,
        *,
        registry: SnapshotRegistry | None = None,
        feature_series: str = "all",
        feature_series_linger_seconds: float = 3600.0,
    ) -> None:
        """``feature_series``: ``"all"`` exports every (feature, method)'s drift series;
        ``"alerting"`` only those whose newest window drifted or whose alert is active,
        and each for ``feature_series_linger_seconds`` (of window end time) after that,
        then removes them: the series count follows the alerting features, not the
        pipeline's width (``[metrics] feature_series``)."""
        self.pipeline = pipeline
        self.registry = registry or SnapshotRegistry()
        self.feature_series = feature_series
        self.feature_series_linger = feature_series_linger_seconds
        self._flagged_at: dict[tuple[str, ...], float] = {}  # drift labels -> last flagged window end
        self._cumulative: dict[str, list[int]] = {}  # source -> [read, accounted for]
        self._newest_event: dict[str, float] = {}
        self._down: set[str] = set()  # sources whose query has ended (failures counted once)
        self._tested: set[tuple[str, ...]] = set()  # drift series that have a p-value
        self._alert_offsets: dict[tuple[str, ...], str] = {}  # firing alert -> its offsets label
        r, base = self.registry, ("pipeline", "source")

        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, (*base, *extra), registry=r)

        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, (*base, *extra), registry=r)

        Gauge("driftline_build_info", "driftline version of the exporting job (always 1).",
              ("version",), registry=r).labels(__version__).set(1)  # fmt: skip
        # records and their fate
        self.read = counter("driftline_records_read", "Records read from the source's Kafka topics.")
        self.records = counter(
            "driftline_records",
            "Records by outcome: valid, dead_lettered (decode or rule) or late.",
            "outcome",
        )
        self.dead_letters = counter(
            "driftline_dead_letters", "Records sent to the dead-letter topic, by reason code.", "reason"
        )
        self.unreconciled = gauge(
            "driftline_records_unreconciled",
            "Records read minus valid, dead-lettered and late since the job started; must be 0.",
        )
        self.lost = counter(
            "driftline_records_lost",
            "Offsets the job skipped because Kafka no longer had them (retention or delete_records "
            "removed them first); only with [kafka] fail_on_data_loss = false, else the query stops.",
            "topic",
        )
        self.offsets_reset = counter(
            "driftline_offsets_reset",
            "Partitions whose offsets went backwards under the job (topic deleted and recreated); "
            "only with [kafka] fail_on_data_loss = false, else the query stops.",
            "topic",
        )
        self.batches = counter("driftline_batches", "Micro-batches committed.")
        self.batch_seconds = Histogram(
            "driftline_batch_duration_seconds", "Wall time of a micro-batch (trigger execution).",
            base, buckets=BATCH_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.input_rate = gauge(
            "driftline_input_records_per_second", "Rate records arrived at, over the last micro-batch."
        )
        self.processed_rate = gauge(
            "driftline_processed_records_per_second", "Rate records were processed at, last micro-batch."
        )
        self.lag = gauge(
            "driftline_consumer_lag_records", "Records in the topic not yet processed by the query.", "topic"
        )
        # freshness
        self.last_event = gauge(
            "driftline_last_event_timestamp_seconds", "Newest valid event time seen (Unix seconds)."
        )
        self.last_record = gauge(
            "driftline_last_record_received_timestamp_seconds",
            "When the query last processed a batch with records (wall clock; query start before that).",
        )
        self.watermark = gauge("driftline_watermark_timestamp_seconds", "The source's event-time watermark.")
        # expectations
        self.expectation_rows = counter(
            "driftline_expectation_rows",
            "Rows checked by the suite's row-level expectations.",
            "suite",
            "outcome",
        )
        self.expectation_success = gauge(
            "driftline_expectation_success_ratio",
            "Share of rows passing every expectation of the suite, in the last batch that checked rows.",
            "suite",
        )
        self.expectation_failures = counter(
            "driftline_expectation_failures",
            "Rows rejected, by the first expectation they failed.",
            "suite",
            "expectation",
        )
        self.window_expectation_violation = gauge(
            "driftline_window_expectation_violation_detected",
            "1 if the newest closed window failed the window expectation (mean, uniqueness, non-null share "
            "...), else 0.",
            "suite",
            "expectation",
        )
        self.window_expectation_observed = gauge(
            "driftline_window_expectation_observed_value",
            "The newest closed window's observed value for the window expectation (NaN when it has none).",
            "suite",
            "expectation",
        )
        self.window_expectation_windows = counter(
            "driftline_window_expectation_windows",
            "Closed windows judged by the window expectation, by outcome.",
            "suite",
            "expectation",
            "outcome",
        )
        # schema drift
        self.schema_events_total = counter(
            "driftline_schema_events",
            "Schema drift events (schema_events table): new_writer_schema (a writer schema id first met), "
            "field_all_null (a field null in every row of a closed window), unseen_categories (a "
            "categorical's values outside the reference vocabulary in a closed window).",
            "kind",
            "field",
        )
        # drift
        self.drift_score = gauge(
            "driftline_drift_score",
            "Drift score of the newest closed window (PSI, KS D, ...).",
            "feature",
            "method",
        )
        self.drift_effect = gauge(
            "driftline_drift_effect",
            "Effect size of the newest closed window, compared with the threshold "
            "(PSI: the PSI; KS: D; chi2: Cramér's V; JS: the distance; null_rate: Cohen's h).",
            "feature",
            "method",
        )
        self.drift_threshold = gauge(
            "driftline_drift_threshold",
            "The effect size above which a window counts as drifted (with p_adjusted below [drift] p_value).",
            "feature",
            "method",
        )
        self.drift_p_value = gauge(
            "driftline_drift_p_value",
            "Benjamini-Hochberg adjusted p-value of the newest closed window (KS, chi2, null_rate).",
            "feature",
            "method",
        )
        self.drift_detected = gauge(
            "driftline_drift_detected", "1 if the newest closed window drifted, else 0.", "feature", "method"
        )
        self.drift_alert_active = gauge(
            "driftline_drift_alert_active",
            "1 while the alert policy's alert (k of n windows drifted, not yet resolved) is firing.",
            "feature",
            "method",
        )
        self.drift_first_flagged = gauge(
            "driftline_drift_first_flagged_timestamp_seconds",
            "Start of the first flagged window of the firing alert (event time, Unix seconds).",
            "feature",
            "method",
        )
        self.alert_offsets_info = gauge(
            "driftline_drift_alert_offsets_info",
            "While a drift alert fires: the Kafka offsets of its episode, from the first flagged window to "
            "the one it fired in (topic/partition:first-last, comma-separated; always 1).",
            "feature",
            "method",
            "offsets",
        )
        self.drift_window_end = gauge(
            "driftline_drift_window_end_timestamp_seconds", "End of the newest scored window (event time)."
        )
        self.drift_alerts = counter(
            "driftline_drift_alerts", "Alert policy events: fired or resolved.", "feature", "method", "event"
        )
        self.reference_info = gauge(
            "driftline_reference_info", "The reference profile version drift is scored against (always 1).",
            "version",
        )  # fmt: skip
        self.breaker_active = gauge(
            "driftline_circuit_breaker_active",
            "1 while the source's circuit breaker is open (too many dead letters in its windows: drift "
            "verdicts are 'degraded'), else 0.",
        )
        self.window_dead_letter_ratio = gauge(
            "driftline_window_dead_letter_ratio",
            "Share of the newest closed window's records that were dead-lettered (the breaker's input).",
        )
        self.report_info = gauge(
            "driftline_report_info", "Where the source's drift report is published ([report] url; always 1).",
            "url",
        )  # fmt: skip
        # the query
        self.query_up = gauge("driftline_query_up", "1 while the source's streaming query runs, else 0.")
        self.query_failures = counter(
            "driftline_query_failures", "Streaming queries that ended with an error."
        )

    # -- events ------------------------------------------------------------------------
    def query_started(self, source: str, *, now: float | None = None) -> None:
        """The query started: up, and its silence is measured from now."""
        labels = (self.pipeline, source)
        self.query_up.labels(*labels).set(1)
        self.last_record.labels(*labels).set(time.time() if now is None else now)
        for outcome in OUTCOMES:  # every outcome series exists from the start, so rate() sees 0
            self.records.labels(*labels, outcome)
        self.read.labels(*labels)
        self.batches.labels(*labels)
        self.query_failures.labels(*labels)
        self._down.discard(source)
        totals = self._cumulative.get(source, [0, 0])
        self.unreconciled.labels(*labels).set(totals[0] - totals[1])
        for reason in JOB_REASONS:  # a reason's first burst shows in rate() only if the series exists
            self.dead_letters.labels(*labels, reason)

    def source_topics(self, source: str, topics: Iterable[str]) -> None:
        """The source's topics: their lost-offset series exist at 0 from the start, so the
        first loss shows in ``increase()`` (a series born at 150 shows no increase)."""
        for topic in topics:
            self.lost.labels(self.pipeline, source, topic)
            self.offsets_reset.labels(self.pipeline, source, topic)

    def reference(self, source: str, version: str | None) -> None:
        """The reference profile the source is scored against (``none``: drift is not scored)."""
        self.reference_info.labels(self.pipeline, source, version or "none").set(1)

    def breaker_state(self, source: str, *, open_: bool, rate: float | None) -> None:
        self.breaker_active.labels(self.pipeline, source).set(int(open_))
        if rate is not None:
            self.window_dead_letter_ratio.labels(self.pipeline, source).set(rate)

    def report_link(self, source: str, url: str) -> None:
        """The published drift report of the source; the drift alerts' descriptions link to it."""
        self.report_info.labels(self.pipeline, source, url).set(1)

    def query_terminated(self, source: str, *, failed: bool) -> None:
        """The query ended; a failure counts once per run, whoever reports it first
        (the job when it sees the exception, or the listener's asynchronous event)."""
        self.query_up.labels(self.pipeline, source).set(0)
        if failed and source not in self._down:
            self.query_failures.labels(self.pipeline, source).inc()
        self._down.add(source)

    def batch_unreconciled(self, source: str, counts: BatchCounts) -> None:
        """A batch the processor refused because its counts do not add up: only the gap shows."""
        totals = self._cumulative.get(source, [0, 0])
        gap = counts.read - (counts.valid + counts.dead_lettered + counts.late)
        self.unreconciled.labels(self.pipeline, source).set(totals[0] - totals[1] + gap)

    def drift_alert_state(self, source: str, feature: str, method: str, *, active: bool, since) -> None:
        """The alert policy's saved state (at query start): firing alerts stay firing across restarts."""
        labels = (self.pipeline, source, feature, method)
        if self.feature_series != "all":
            if not active:
                return
            self._flagged_at[labels] = since.timestamp() if since else time.time()
        with self.registry.updates:
            self.drift_alert_active.labels(*labels).set(int(active))
            self.drift_first_flagged.labels(*labels).set(_seconds(since) if active and since else math.nan)

    def batch_progress(
        self, source: str, *, seconds: float | None, input_rate: float | None, processed_rate: float | None
    ) -> None:
        """From Spark's query progress (listener): duration and rates of one micro-batch."""
        labels = (self.pipeline, source)
        if seconds is not None:
            self.batch_seconds.labels(*labels).observe(seconds)
        for gauge, value in ((self.input_rate, input_rate), (self.processed_rate, processed_rate)):
            if value is not None and math.isfinite(value):
                gauge.labels(*labels).set(value)

    def batch_committed(
        self, source: str, counts: BatchCounts, *, suite: str | None, now: float | None = None
    ):
        """From the batch processor, once its tables and dead letters are written.

        The unreconciled gauge is ``Σ read − Σ (valid + dead_lettered + late)`` over the
        batches seen by this process.
        """
        labels = (self.pipeline, source)
        self.read.labels(*labels).inc(counts.read)
        self.records.labels(*labels, "valid").inc(counts.valid)
        self.records.labels(*labels, "dead_lettered").inc(counts.dead_lettered)
        self.records.labels(*labels, "late").inc(counts.late)
        for reason, count in counts.by_reason.items():
            self.dead_letters.labels(*labels, reason).inc(count)
        if counts.late:
            self.dead_letters.labels(*labels, "LATE_DATA").inc(counts.late)
        totals = self._cumulative.setdefault(source, [0, 0])
        totals[0] += counts.read
        totals[1] += counts.valid + counts.dead_lettered + counts.late
        self.unreconciled.labels(*labels).set(totals[0] - totals[1])
        for topic, lost in counts.lost.items():
            self.lost.labels(*labels, topic).inc(lost)
        for topic, partitions in counts.offsets_reset.items():
            self.offsets_reset.labels(*labels, topic).inc(partitions)
        self.batches.labels(*labels).inc()
        if counts.read:
            self.last_record.labels(*labels).set(time.time() if now is None else now)
        if counts.max_event_time is not None:
            newest = max(self._newest_event.get(source, -math.inf), _seconds(counts.max_event_time))
            self._newest_event[source] = newest
            self.last_event.labels(*labels).set(newest)
        if counts.watermark is not None:
            self.watermark.labels(*labels).set(_seconds(counts.watermark))
        if suite is not None:
            failed = sum(counts.rule_failures.values())
            self.expectation_rows.labels(*labels, suite, "success").inc(counts.rows_checked - failed)
            self.expectation_rows.labels(*labels, suite, "failure").inc(failed)
            for rule, count in counts.rule_failures.items():
                self.expectation_failures.labels(*labels, suite, rule).inc(count)
            if counts.rows_checked:
                self.expectation_success.labels(*labels, suite).set(1 - failed / counts.rows_checked)

    def window_expectations(self, source: str, results: Iterable[dict]) -> None:
        """From the window checks: ``quality_results`` rows, oldest window first; the gauges
        keep each expectation's newest window."""
        for r in sorted(results, key=lambda r: r["window_end"]):
            labels = (self.pipeline, source, r["suite"] or "", r["expectation"])
            observed = r["observed_value"]
            self.window_expectation_violation.labels(*labels).set(int(not r["success"]))
            self.window_expectation_observed.labels(*labels).set(math.nan if observed is None else observed)
            self.window_expectation_windows.labels(*labels, "success" if r["success"] else "failure").inc()

    def schema_series(self, source: str, series: Iterable[tuple[str, str]]) -> None:
        """At query start: the source's schema-event series, (kind, field), at 0, so the
        first event shows in ``increase()`` (a series born at 1 shows none)."""
        for kind, name in series:
            self.schema_events_total.labels(self.pipeline, source, kind, name)

    def schema_events(self, source: str, rows: Iterable[dict]) -> None:
        """From the schema watch: this batch's ``schema_events`` rows."""
        for r in rows:
            self.schema_events_total.labels(self.pipeline, source, r["kind"], r["field"] or "").inc()

    def drift_scored(
        self, source: str, observations: Iterable[DriftObservation], events: Sequence[AlertEvent] = ()
    ) -> None:
        """From the drift scorer: the newest closed window per (feature, method), and the
        alert events of the windows it scored, in their order.

        The alert rules read a firing alert's offsets series when its
        ``driftline_drift_alert_active`` is 1 (the webhook's ``offsets`` annotation). The
        whole update holds the registry's lock (:class:`SnapshotRegistry`), so a scrape sees
        it whole; and in its order, a (feature, method) whose last event here is ``fired``
        gets its offsets series before its active gauge turns 1, one whose last event is
        ``resolved`` loses it only after the gauge turned 0 (what a ``name[]`` filtered
        scrape, which bypasses the lock, relies on)."""
        with self.registry.updates:
            self._drift_scored(source, observations, events)

    def _drift_scored(
        self, source: str, observations: Iterable[DriftObservation], events: Sequence[AlertEvent]
    ) -> None:
        final = {(e.feature, e.method): e.offsets if e.event == "fired" else None for e in events}
        for (feature, method), offsets in final.items():
            if offsets is not None:
                self.drift_alert_offsets(source, feature, method, offsets)
        newest = None
        for o in observations:
            labels = (self.pipeline, source, o.feature, o.method)
            newest = o.window_end if newest is None else max(newest, o.window_end)
            if not self._exported(labels, flagged=o.drifted or o.alert_active, at=_seconds(o.window_end)):
                continue
            self.drift_score.labels(*labels).set(math.nan if o.score is None else o.score)
            self.drift_effect.labels(*labels).set(math.nan if o.effect is None else o.effect)
            if o.p_adjusted is not None or labels in self._tested:  # PSI and JS never have one
                self._tested.add(labels)
                self.drift_p_value.labels(*labels).set(math.nan if o.p_adjusted is None else o.p_adjusted)
            self.drift_threshold.labels(*labels).set(o.threshold)
            self.drift_detected.labels(*labels).set(int(o.drifted))
            self.drift_alert_active.labels(*labels).set(int(o.alert_active))
            first = self.drift_first_flagged.labels(*labels)
            first.set(_seconds(o.first_flagged) if o.alert_active and o.first_flagged else math.nan)
        if newest is not None:
            self.drift_window_end.labels(self.pipeline, source).set(_seconds(newest))
        for e in events:
            self.drift_alert_event(source, e.feature, e.method, e.event)
        for (feature, method), offsets in final.items():
            if offsets is None:
                self.drift_alert_offsets(source, feature, method, None)

    @classmethod
    def for_pipeline(cls, config) -> PipelineMetrics:
        """The metrics of a :class:`~driftline.config.PipelineConfig`, with its ``[metrics]``
        series settings."""
        settings = config.metrics
        return cls(config.name, feature_series=settings.feature_series,
                   feature_series_linger_seconds=settings.feature_series_linger.seconds)  # fmt: skip

    def _exported(self, labels: tuple[str, ...], *, flagged: bool, at: float) -> bool:
        """Whether a (feature, method)'s drift series are exported after the window ending
        at ``at``; in ``alerting`` mode, series that stop being so are removed."""
        if self.feature_series == "all":
            return True
        if flagged:
            self._flagged_at[labels] = at
        last = self._flagged_at.get(labels)
        if last is not None and at - last <= self.feature_series_linger:
            return True
        self._flagged_at.pop(labels, None)
        self._tested.discard(labels)
        for gauge in self._feature_gauges():
            with contextlib.suppress(KeyError):  # never exported
                gauge.remove(*labels)
        return False

    def _feature_gauges(self) -> tuple[Gauge, ...]:
        return (self.drift_score, self.drift_effect, self.drift_p_value, self.drift_threshold,
                self.drift_detected, self.drift_alert_active, self.drift_first_flagged)  # fmt: skip

    def drift_alert_event(self, source: str, feature: str, method: str, event: str) -> None:
        self.drift_alerts.labels(self.pipeline, source, feature, method, event).inc()

    def drift_alert_offsets(self, source: str, feature: str, method: str, offsets: str | None) -> None:
        """The firing alert's episode offsets (one series per firing alert); ``None``: resolved.
        A new episode's series is added before the previous one is removed (a scrape in
        between sees both, never neither)."""
        labels = (self.pipeline, source, feature, method)
        with self.registry.updates:
            previous = self._alert_offsets.pop(labels, None)
            if offsets is not None:
                self.alert_offsets_info.labels(*labels, offsets).set(1)
                self._alert_offsets[labels] = offsets
            if previous is not None and previous != offsets:
                with contextlib.suppress(KeyError):
                    self.alert_offsets_info.remove(*labels, previous)

    def consumer_lag(self, source: str, topic: str, records: int) -> None:
        self.lag.labels(self.pipeline, source, topic).set(records)


__all__ = ["AlertEvent", "BatchCounts", "DriftObservation", "PipelineMetrics", "SnapshotRegistry"]
