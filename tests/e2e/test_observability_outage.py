"""Prometheus and Alertmanager go down while the job runs: the job goes on, the exporter
serves, and the drift alert reaches its receiver once they are back.

The job needs neither (Prometheus pulls from the exporter; Alertmanager hears from
Prometheus), so an outage of both must not slow or stop it, and the alert of a drift
that started during the outage must still be delivered afterwards: Prometheus keeps
the series it scrapes again, re-evaluates the rule and sends the firing alert to the
restarted Alertmanager.
"""

from __future__ import annotations

import urllib.request

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


def test_the_job_rides_out_a_prometheus_and_alertmanager_outage(spark, kafka_bootstrap, topic_prefix,
                                                                 tmp_path) -> None:  # fmt: skip
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
            LiveProducer(config, "payments", rate=RATE, drifts=DRIFTS) as producer,
            StreamingJob(spark, config, ["payments"], metrics) as job,
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
    finally:
        exporter.close()
