"""Faults of the world around a running job, with real Prometheus and Alertmanager.

Prometheus and Alertmanager go down while the job runs: the job goes on, the exporter
serves, and the drift alert reaches its receiver once they are back. A source stops
sending: it is silent, not drifted.

The job needs neither (Prometheus pulls from the exporter; Alertmanager hears from
Prometheus), so an outage of both must not slow or stop it, and the alert of a drift
that started during the outage must still be delivered afterwards: Prometheus keeps
the series it scrapes again, re-evaluates the rule and sends the firing alert to the
restarted Alertmanager.
"""

from __future__ import annotations

import time
import urllib.request
from contextlib import contextmanager

import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift
from driftline.demo.promstack import MISSING_HINT, WebhookReceiver, find_binaries, shipped_stack
from driftline.metrics import PipelineMetrics, serve
from driftline.testing.live import LiveProducer, StreamingJob, build_reference, live_config, wait_until
from tests.conftest import pipeline_copy

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(900)]
RATE = 150
DRIFTS = (Drift("mean_shift", "amount", 0, 1.5),)


@contextmanager
def _live(spark, kafka_bootstrap, topic_prefix, tmp_path, drifts):
    """An exporter, Prometheus and Alertmanager with the shipped rules and routes, a live
    producer of payments and the job: (metrics, exporter, webhook, prom, producer, job)."""
    binaries = find_binaries()
    if binaries is None:
        pytest.fail(MISSING_HINT)
    metrics = PipelineMetrics("demo")
    exporter = serve(metrics.registry, port=0)
    config = live_config(
        load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    )
    build_reference(config, "payments", tmp_path)
    try:
        with (
            WebhookReceiver() as webhook,
            shipped_stack(
                tmp_path / "promstack",
                scrape_targets=[f"127.0.0.1:{exporter.port}"],
                webhook=webhook,
                binaries=binaries,
            ) as prom,  # fmt: skip
            LiveProducer(config, "payments", rate=RATE, drifts=drifts) as producer,
            StreamingJob(spark, config, ["payments"], metrics) as job,
        ):
            yield metrics, exporter, webhook, prom, producer, job
    finally:
        exporter.close()


def test_the_job_rides_out_a_prometheus_and_alertmanager_outage(spark, kafka_bootstrap, topic_prefix,
                                                                 tmp_path) -> None:  # fmt: skip
    with _live(spark, kafka_bootstrap, topic_prefix, tmp_path, DRIFTS) as (
        _,
        exporter,
        webhook,
        prom,
        producer,
        job,
    ):
        prom.wait_for_scrape()
        first = job.wait_for_windows(0, after=None, timeout=240)  # scoring clean windows
        prom.stop("alertmanager")
        prom.stop("prometheus")
        producer.start_drift()
        job.wait_for_windows(3, after=first, timeout=240)  # the job went on: three more windows

        scrape = urllib.request.urlopen(exporter.url, timeout=10).read().decode()  # the exporter serves
        active = [line for line in scrape.splitlines()
                  if line.startswith("driftline_drift_alert_active{") and 'feature="amount"' in line]  # fmt: skip
        assert active and any(line.endswith(" 1.0") for line in active), active
        assert webhook.notifications == []  # nothing could be delivered

        prom.start("alertmanager")
        prom.start("prometheus")
        wait_until(prom.alertmanager_discovered, 60, "prometheus to discover the restarted alertmanager")
        alert = webhook.wait_for_alert("DriftlineFeatureDrift", receiver="webhook",
                                       labels={"source": "payments", "feature": "amount"}, timeout=240)  # fmt: skip
        assert alert.received_at > producer.first_drifted_at
        job.check()


def test_a_source_that_stops_sending_is_silent_not_drifted(
    spark, kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    """The producer stops while the job runs on: the silence Prometheus measures grows from
    the last record (not from the last batch or scrape), the half-filled last window is
    never closed or scored, and no drift alert fires. DriftlineSourceSilent's expression
    is evaluated on these live series with a 20 s threshold in place of 900 s (its
    promtool test covers the 15 minutes)."""
    silent = 'time() - driftline_last_record_received_timestamp_seconds{source="payments"} > 20'
    with _live(spark, kafka_bootstrap, topic_prefix, tmp_path, ()) as (
        metrics,
        _,
        webhook,
        prom,
        producer,
        job,
    ):
        job.wait_for_windows(2, after=job.wait_for_windows(0, after=None, timeout=240), timeout=240)
        producer.stop()  # the source goes silent; the job runs on
        stopped = time.time()
        last_scored = job.scored_until()
        wait_until(lambda: prom.query(silent), 120, "the silence to pass 20 s in Prometheus")
        last_record = metrics.registry.get_sample_value(
            "driftline_last_record_received_timestamp_seconds", {"pipeline": "demo", "source": "payments"}
        )
        # the batch holding the last records came just after the stop; nothing moved it since
        assert stopped - 30 < last_record <= stopped + 10 and last_record < time.time() - 20
        assert (
            job.scored_until() <= last_scored + job.config.windows.size.seconds
        )  # no window closes in silence
        job.check()
        drift = [
            a
            for a in prom.prometheus_alerts()
            if a["labels"]["alertname"].startswith("DriftlineFeatureDrift")
        ]
        assert drift == [] and webhook.notifications == []
    assert producer.produced > 0
