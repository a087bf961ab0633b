"""The exporter's metrics: names by Prometheus conventions, values from the job's events."""

from __future__ import annotations

import math
import socket
import threading
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from driftline.errors import ConfigError
from driftline.metrics import AlertEvent, BatchCounts, DriftObservation, PipelineMetrics, serve

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
UNITS = ("_seconds", "_records", "_per_second", "_ratio", "_info", "_up", "_detected", "_active",
         "_score", "_effect", "_threshold", "_value", "_unreconciled")  # fmt: skip


def _families(metrics: PipelineMetrics) -> dict[str, object]:
    exporter = serve(metrics.registry, port=0)
    try:
        text = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
    finally:
        exporter.close()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(metrics: PipelineMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _counts(**overrides) -> BatchCounts:
    base = dict(read=100, valid=90, dead_lettered=7, late=3, by_reason={"RULE_FAILED": 5, "NOT_FRAMED": 2},
                rule_failures={"amount:between": 4, "currency:in_set": 1}, rows_checked=98,
                max_event_time=T0, watermark=None)  # fmt: skip
    return BatchCounts(**{**base, **overrides})


def test_names_follow_prometheus_conventions():
    metrics = PipelineMetrics("p")
    metrics.query_started("s")
    families = _families(metrics)
    assert len(families) >= 25
    for name, family in families.items():
        assert name.startswith("driftline_"), name
        assert family.documentation, name
        samples = {s.name for s in family.samples}
        if family.type == "counter":
            assert all(s.endswith("_total") for s in samples), (name, samples)
        if family.type == "histogram":
            assert name.endswith("_seconds")
        if family.type == "gauge":  # counters name what they count (records_read_total)
            assert name.endswith(UNITS), f"{name} has no unit suffix"
    # every labelled series carries pipeline and source, and no label is unbounded (no ids, no values)
    allowed = {"pipeline", "source", "outcome", "reason", "topic", "feature", "method", "suite",
               "expectation", "event", "le", "version"}  # fmt: skip
    for family in families.values():
        for s in family.samples:
            assert set(s.labels) <= allowed, (s.name, s.labels)


def test_batch_counts_add_up_and_reconcile():
    metrics = PipelineMetrics("p")
    metrics.query_started("s", now=1000.0)
    assert (
        _value(metrics, "driftline_last_record_received_timestamp_seconds", pipeline="p", source="s") == 1000
    )
    assert _value(metrics, "driftline_records_total", pipeline="p", source="s", outcome="late") == 0
    for reason in ("NOT_FRAMED", "UNKNOWN_SCHEMA", "DECODE_FAILED", "RULE_FAILED", "LATE_DATA"):
        assert _value(metrics, "driftline_dead_letters_total", pipeline="p", source="s", reason=reason) == 0
    assert (
        _value(metrics, "driftline_dead_letters_total", pipeline="p", source="s", reason="MISSING_FIELD")
        is None
    )
    metrics.batch_committed("s", _counts(), suite="pay", now=2000.0)
    metrics.batch_committed("s", _counts(max_event_time=T0.replace(hour=7)), suite="pay", now=3000.0)
    ids = {"pipeline": "p", "source": "s"}
    assert _value(metrics, "driftline_records_read_total", **ids) == 200
    assert _value(metrics, "driftline_records_total", **ids, outcome="valid") == 180
    assert _value(metrics, "driftline_dead_letters_total", **ids, reason="RULE_FAILED") == 10
    assert (
        _value(metrics, "driftline_dead_letters_total", **ids, reason="LATE_DATA") == 6
    )  # late rows are dead letters too
    assert _value(metrics, "driftline_records_unreconciled", **ids) == 0
    assert _value(metrics, "driftline_batches_total", **ids) == 2
    # freshness never goes back when an older batch arrives; wall clock of the last batch with records
    assert _value(metrics, "driftline_last_event_timestamp_seconds", **ids) == T0.timestamp()
    assert _value(metrics, "driftline_last_record_received_timestamp_seconds", **ids) == 3000
    metrics.batch_committed("s", _counts(read=0, valid=0, dead_lettered=0, late=0, by_reason={},
                                         rule_failures={}, rows_checked=0, max_event_time=None), suite="pay",
                            now=4000.0)  # fmt: skip
    assert _value(metrics, "driftline_last_record_received_timestamp_seconds", **ids) == 3000
    # expectations: 98 checked per batch, 5 failed
    assert _value(metrics, "driftline_expectation_rows_total", **ids, suite="pay", outcome="failure") == 10
    assert _value(metrics, "driftline_expectation_rows_total", **ids, suite="pay", outcome="success") == 186
    assert _value(metrics, "driftline_expectation_failures_total", **ids, suite="pay",
                  expectation="amount:between") == 8  # fmt: skip
    assert _value(metrics, "driftline_expectation_success_ratio", **ids, suite="pay") == pytest.approx(
        93 / 98
    )
    # a batch that does not reconcile shows its gap
    metrics.batch_committed("s", _counts(valid=80), suite=None)
    assert _value(metrics, "driftline_records_unreconciled", **ids) == 10


def test_lost_offsets_and_reset_partitions_are_counted_per_topic():
    metrics = PipelineMetrics("p")
    ids = {"pipeline": "p", "source": "s"}
    metrics.batch_committed("s", _counts(lost={"t1": 150, "t2": 7}), suite=None)
    metrics.batch_committed("s", _counts(lost={"t1": 3}, offsets_reset={"t2": 2}), suite=None)
    assert _value(metrics, "driftline_records_lost_total", **ids, topic="t1") == 153
    assert _value(metrics, "driftline_records_lost_total", **ids, topic="t2") == 7
    assert _value(metrics, "driftline_offsets_reset_total", **ids, topic="t2") == 2
    assert _value(metrics, "driftline_offsets_reset_total", **ids, topic="t1") is None
    assert _value(metrics, "driftline_records_unreconciled", **ids) == 0, "lost offsets were never read"


def test_drift_gauges_follow_the_newest_window():
    metrics = PipelineMetrics("p")
    end = T0.replace(minute=30)
    metrics.drift_scored("s", [
        DriftObservation("amount", "psi", 0.61, 0.61, None, 0.2, True, True, end, T0.replace(minute=20)),
        DriftObservation("amount", "ks", None, None, None, 0.1, False, False, end, None),
        DriftObservation("country", "chi2", 35.2, 0.04, 0.003, 0.1, False, False, end.replace(minute=25), None),
    ])  # fmt: skip
    ids = {"pipeline": "p", "source": "s"}
    assert _value(metrics, "driftline_drift_score", **ids, feature="amount", method="psi") == 0.61
    assert math.isnan(_value(metrics, "driftline_drift_score", **ids, feature="amount", method="ks"))
    assert _value(metrics, "driftline_drift_detected", **ids, feature="amount", method="psi") == 1
    assert _value(metrics, "driftline_drift_effect", **ids, feature="country", method="chi2") == 0.04
    assert _value(metrics, "driftline_drift_p_value", **ids, feature="country", method="chi2") == 0.003
    assert _value(metrics, "driftline_drift_p_value", **ids, feature="amount", method="psi") is None
    assert _value(metrics, "driftline_drift_alert_active", **ids, feature="amount", method="psi") == 1
    assert _value(metrics, "driftline_drift_alert_active", **ids, feature="country", method="chi2") == 0
    first = _value(
        metrics, "driftline_drift_first_flagged_timestamp_seconds", **ids, feature="amount", method="psi"
    )
    assert first == T0.replace(minute=20).timestamp()
    assert _value(metrics, "driftline_drift_window_end_timestamp_seconds", **ids) == end.timestamp()
    metrics.drift_alert_event("s", "amount", "psi", "fired")
    assert (
        _value(metrics, "driftline_drift_alerts_total", **ids, feature="amount", method="psi", event="fired")
        == 1
    )
    # resolved: the flag drops and "since when" is no longer a time
    metrics.drift_scored(
        "s", [DriftObservation("amount", "psi", 0.01, 0.01, None, 0.2, False, False, end, None)]
    )
    assert _value(metrics, "driftline_drift_alert_active", **ids, feature="amount", method="psi") == 0
    assert math.isnan(
        _value(
            metrics, "driftline_drift_first_flagged_timestamp_seconds", **ids, feature="amount", method="psi"
        )
    )


def _after_each_gauge_change(patch, action) -> None:
    """Patch ``Gauge.set`` and ``Gauge.remove`` (the parent's, and every labelled child's) to
    run ``action`` right after each change: where a scrape could come in."""

    def then_act(original):
        def wrapped(self, *args, **kwargs):
            original(self, *args, **kwargs)
            action()

        return wrapped

    patch.setattr(Gauge, "set", then_act(Gauge.set))
    patch.setattr(Gauge, "remove", then_act(Gauge.remove))


def test_no_scrape_sees_a_firing_alert_without_its_offsets(monkeypatch):
    """The webhook's ``offsets`` annotation is read from the offsets series while the alert's
    active gauge is 1. Prometheus may scrape between any two updates: after every single
    gauge change, each active alert has exactly its episode's offsets series (a demo run
    once delivered an alert with empty offsets: the gauge was set before the series)."""
    metrics = PipelineMetrics("p")
    checked = []

    def series(name: str) -> dict[tuple[str, str], list[dict[str, str]]]:
        out: dict[tuple[str, str], list[dict[str, str]]] = {}
        for family in metrics.registry.collect():
            for sample in family.samples:
                if sample.name == name and sample.value == 1:
                    out.setdefault((sample.labels["feature"], sample.labels["method"]), []).append(
                        sample.labels
                    )
        return out

    def invariant() -> None:
        active, offsets = series("driftline_drift_alert_active"), series("driftline_drift_alert_offsets_info")
        assert set(active) <= set(offsets), (active, offsets)
        checked.append(len(active))

    _after_each_gauge_change(monkeypatch, invariant)

    def window(minute: int, *, drifted: bool, active: bool, events=()) -> None:
        end = T0.replace(minute=minute)
        since = T0 if active else None
        metrics.drift_scored("s", [DriftObservation("amount", "psi", 0.5, 0.5, None, 0.2, drifted, active, end, since)],
                             events)  # fmt: skip

    window(10, drifted=True, active=False)
    window(20, drifted=True, active=True, events=[AlertEvent("amount", "psi", "fired", "t/0:1-9")])
    assert {s["offsets"] for s in series("driftline_drift_alert_offsets_info")[("amount", "psi")]} == {
        "t/0:1-9"
    }
    # resolved and fired again in one batch's windows: the new episode's offsets replace the old
    window(40, drifted=True, active=True, events=[AlertEvent("amount", "psi", "resolved"),
                                                   AlertEvent("amount", "psi", "fired", "t/0:30-49")])  # fmt: skip
    assert {s["offsets"] for s in series("driftline_drift_alert_offsets_info")[("amount", "psi")]} == {
        "t/0:30-49"
    }
    window(50, drifted=False, active=False, events=[AlertEvent("amount", "psi", "resolved")])
    assert series("driftline_drift_alert_offsets_info") == {}
    assert _value(metrics, "driftline_drift_alerts_total", pipeline="p", source="s", feature="amount",
                  method="psi", event="resolved") == 2  # fmt: skip
    assert 1 in checked and len(checked) > 20  # the invariant was checked with an alert active


def test_a_scrape_during_a_drift_update_sees_all_of_it_or_none(monkeypatch):
    """prometheus-client reads one metric after another: without the registry's lock a
    scrape could read an alert's active gauge before its resolution and its offsets after
    it. After every single gauge change inside an update, a scrape starts on another
    thread; each must come out equal to the state before or after a whole update."""
    metrics = PipelineMetrics("p")

    def snapshot() -> frozenset:
        return frozenset(
            (s.name, tuple(sorted(s.labels.items())), None if math.isnan(s.value) else s.value)
            for family in metrics.registry.collect()
            for s in family.samples
            if s.name.startswith("driftline_drift_")  # the offsets series too
        )

    scrapes: list[frozenset] = []
    threads: list[threading.Thread] = []

    def scrape() -> None:
        thread = threading.Thread(target=lambda: scrapes.append(snapshot()))
        thread.start()
        threads.append(thread)
        thread.join(0.05)  # unlocked, the scrape would finish here, in the middle of the update

    whole = [snapshot()]
    end = T0.replace(minute=20)
    fired = [DriftObservation("amount", "psi", 0.5, 0.5, None, 0.2, True, True, end, T0)]
    resolved = [
        DriftObservation("amount", "psi", 0.01, 0.01, None, 0.2, False, False, end.replace(minute=30), None)
    ]
    with monkeypatch.context() as patch:
        _after_each_gauge_change(patch, scrape)
        for observations, events in ((fired, [AlertEvent("amount", "psi", "fired", "t/0:1-9")]),
                                     (resolved, [AlertEvent("amount", "psi", "resolved")])):  # fmt: skip
            metrics.drift_scored("s", observations, events)
            whole.append(snapshot())
    for thread in threads:
        thread.join()
    assert len(scrapes) == len(threads) > 10
    assert len(set(whole)) == 3  # the updates changed what a scrape sees
    torn = [scrape - whole[-1] for scrape in scrapes if scrape not in whole]
    assert torn == []


def test_alerting_mode_exports_only_flagged_features_and_drops_them_after_the_linger():
    """``[metrics] feature_series = "alerting"``: 500 quiet features publish no drift series;
    a drifted one appears, stays for the linger after its last flagged window, then goes."""
    from datetime import timedelta

    metrics = PipelineMetrics("p", feature_series="alerting", feature_series_linger_seconds=600)
    ids = {"pipeline": "p", "source": "s"}

    def window(minute: int, drifted: set[str]) -> None:
        end = T0 + timedelta(minutes=minute)
        metrics.drift_scored("s", [
            DriftObservation(f"f{i:03d}", "ks", 0.5 if f"f{i:03d}" in drifted else 0.01, 0.5, 1e-6, 0.1,
                             f"f{i:03d}" in drifted, False, end, None)
            for i in range(500)
        ])  # fmt: skip

    def series() -> set[str]:
        family = _families(metrics)["driftline_drift_score"]
        return {sample.labels["feature"] for sample in family.samples}

    window(5, set())
    assert series() == set()
    assert _value(metrics, "driftline_drift_window_end_timestamp_seconds", **ids) is not None
    window(10, {"f007"})
    assert series() == {"f007"}
    assert _value(metrics, "driftline_drift_detected", **ids, feature="f007", method="ks") == 1
    window(15, set())  # 5 minutes after its last drifted window: kept, now showing no drift
    assert series() == {"f007"}
    assert _value(metrics, "driftline_drift_detected", **ids, feature="f007", method="ks") == 0
    window(21, set())  # 11 minutes after: removed from every drift gauge
    assert series() == set()
    assert _value(metrics, "driftline_drift_detected", **ids, feature="f007", method="ks") is None
    assert _value(metrics, "driftline_drift_p_value", **ids, feature="f007", method="ks") is None
    # a restarted job's firing alert (saved state) is exported in this mode too; a quiet one is not
    metrics.drift_alert_state("s", "f042", "ks", active=True, since=T0)
    metrics.drift_alert_state("s", "f043", "ks", active=False, since=None)
    assert _value(metrics, "driftline_drift_alert_active", **ids, feature="f042", method="ks") == 1
    assert _value(metrics, "driftline_drift_alert_active", **ids, feature="f043", method="ks") is None


def test_all_mode_exports_every_feature():
    metrics = PipelineMetrics("p")
    end = T0.replace(minute=5)
    metrics.drift_scored("s", [DriftObservation(f"f{i}", "psi", 0.0, 0.0, None, 0.2, False, False, end, None)
                               for i in range(50)])  # fmt: skip
    assert len(_families(metrics)["driftline_drift_score"].samples) == 50


def test_query_lifecycle():
    metrics = PipelineMetrics("p")
    metrics.query_started("s")
    ids = {"pipeline": "p", "source": "s"}
    assert _value(metrics, "driftline_query_up", **ids) == 1
    metrics.batch_progress("s", seconds=12.5, input_rate=100.0, processed_rate=float("nan"))
    assert _value(metrics, "driftline_batch_duration_seconds_count", **ids) == 1
    assert _value(metrics, "driftline_batch_duration_seconds_bucket", **ids, le="20.0") == 1
    assert _value(metrics, "driftline_batch_duration_seconds_bucket", **ids, le="10.0") == 0
    assert _value(metrics, "driftline_input_records_per_second", **ids) == 100
    assert _value(metrics, "driftline_processed_records_per_second", **ids) is None  # NaN is not exported
    metrics.query_terminated("s", failed=True)
    assert _value(metrics, "driftline_query_up", **ids) == 0
    assert _value(metrics, "driftline_query_failures_total", **ids) == 1


def test_exporter_port_in_use_names_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match=r"\[metrics\] cannot serve on 127\.0\.0\.1:\d+.*port"):
            serve(PipelineMetrics("p").registry, port=taken.getsockname()[1])


def test_a_failure_reported_twice_counts_once_and_a_restart_clears_it():
    metrics = PipelineMetrics("p")
    ids = {"pipeline": "p", "source": "s"}
    metrics.query_started("s")
    metrics.query_terminated("s", failed=True)  # the job, synchronously
    metrics.query_terminated("s", failed=True)  # the listener's asynchronous event
    assert _value(metrics, "driftline_query_failures_total", **ids) == 1
    metrics.query_started("s")
    metrics.query_terminated("s", failed=True)
    assert _value(metrics, "driftline_query_failures_total", **ids) == 2


def test_a_refused_batch_shows_its_gap_without_counting_as_committed():
    metrics = PipelineMetrics("p")
    ids = {"pipeline": "p", "source": "s"}
    metrics.query_started("s")
    metrics.batch_committed("s", _counts(), suite=None)
    metrics.batch_unreconciled("s", _counts(valid=85))
    assert _value(metrics, "driftline_records_unreconciled", **ids) == 5
    assert _value(metrics, "driftline_batches_total", **ids) == 1
    assert _value(metrics, "driftline_records_read_total", **ids) == 100
    metrics.query_started("s")  # a restart in the same process keeps what was seen
    assert _value(metrics, "driftline_records_unreconciled", **ids) == 0  # the refused batch never counted


def test_saved_alert_state_and_missing_p_values():
    metrics = PipelineMetrics("p")
    ids = {"pipeline": "p", "source": "s", "feature": "amount", "method": "ks"}
    metrics.drift_alert_state("s", "amount", "ks", active=True, since=T0)
    assert _value(metrics, "driftline_drift_alert_active", **ids) == 1
    assert _value(metrics, "driftline_drift_first_flagged_timestamp_seconds", **ids) == T0.timestamp()
    end = T0.replace(minute=30)
    metrics.drift_scored("s", [DriftObservation("amount", "ks", 0.3, 0.3, 1e-9, 0.1, True, True, end, T0)])
    assert _value(metrics, "driftline_drift_p_value", **ids) == 1e-9
    # a window without a p-value must not keep showing the old one
    metrics.drift_scored("s", [DriftObservation("amount", "ks", None, None, None, 0.1, False, True, end, T0)])
    assert math.isnan(_value(metrics, "driftline_drift_p_value", **ids))


def test_window_expectation_gauges_keep_the_newest_window_and_count_every_one():
    metrics = PipelineMetrics("p")
    rows = [  # given out of order: the gauges must end on the newest window (minute 20)
        {"window_end": T0.replace(minute=20), "suite": "payments", "expectation": "transaction_id:unique",
         "success": True, "observed_value": 0.0},
        {"window_end": T0.replace(minute=10), "suite": "payments", "expectation": "transaction_id:unique",
         "success": False, "observed_value": 0.02},
        {"window_end": T0.replace(minute=20), "suite": "payments", "expectation": "amount:mean_between",
         "success": False, "observed_value": None},
    ]  # fmt: skip
    metrics.window_expectations("s", rows)
    ids = {"pipeline": "p", "source": "s", "suite": "payments"}
    unique, mean = {"expectation": "transaction_id:unique"}, {"expectation": "amount:mean_between"}
    assert _value(metrics, "driftline_window_expectation_violation_detected", **ids, **unique) == 0
    assert _value(metrics, "driftline_window_expectation_observed_value", **ids, **unique) == 0.0
    assert _value(metrics, "driftline_window_expectation_violation_detected", **ids, **mean) == 1
    assert math.isnan(_value(metrics, "driftline_window_expectation_observed_value", **ids, **mean))
    assert (
        _value(metrics, "driftline_window_expectation_windows_total", **ids, **unique, outcome="failure") == 1
    )
    assert (
        _value(metrics, "driftline_window_expectation_windows_total", **ids, **unique, outcome="success") == 1
    )
