"""Drift alerts end to end through real Prometheus and Alertmanager (Debian's packages).

One exporter, one Prometheus with the shipped rules (scraping and evaluating every
second) and one Alertmanager with the shipped routing tree and inhibitions, its
receivers pointed at a local webhook server, for the module. The job streams live
records (event time = now) through ten-second windows:

* control: an undrifted stream until several windows were scored and Prometheus has
  evaluated the rules on them: no alert pending, firing or delivered;
* drift: clean, then a mean shift and a new category from a recorded moment: the
  drift alert reaches the ``webhook`` receiver (and ``chat``, by severity) for the
  drifted features only, and the event-to-alert latency is measured.
"""

from __future__ import annotations

import re
import time

import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift
from driftline.demo.promstack import (
    MISSING_HINT,
    WebhookReceiver,
    find_binaries,
    shipped_stack,
)
from driftline.metrics import PipelineMetrics, serve
from driftline.testing.live import LiveProducer, StreamingJob, build_reference, live_config
from tests.conftest import pipeline_copy

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(900)]

RATE = 150  # records per second: 1,500 per ten-second window
WINDOW = 10.0
DRIFTS = (Drift("mean_shift", "amount", 0, 1.5), Drift("new_category", "country", 0, 0.3, "BR"))
QUIET = ("installments", "merchant_category", "is_online")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    binaries = find_binaries()
    if binaries is None:
        pytest.fail(MISSING_HINT)
    metrics = PipelineMetrics("demo")
    exporter = serve(metrics.registry, port=0)
    webhook = WebhookReceiver()
    workdir = tmp_path_factory.mktemp("promstack")
    try:
        with shipped_stack(workdir, scrape_targets=[f"127.0.0.1:{exporter.port}"], webhook=webhook,
                           binaries=binaries) as prom:  # fmt: skip
            prom.wait_for_scrape()
            yield metrics, webhook, prom
    finally:
        exporter.close()
        webhook.close()


def _config(tmp_path, kafka_bootstrap, topic_prefix, name):
    config = live_config(load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap,
                                                     prefix=topic_prefix, name=name)))  # fmt: skip
    build_reference(config, "payments", tmp_path)
    return config


def test_undrifted_control_run_raises_no_alert(stack, spark, kafka_bootstrap, topic_prefix, tmp_path):
    metrics, webhook, prom = stack
    config = _config(tmp_path, kafka_bootstrap, topic_prefix, "control")
    with (
        LiveProducer(config, "payments", rate=RATE, drifts=()) as producer,
        StreamingJob(spark, config, ["payments"], metrics) as job,
    ):
        first = job.wait_for_windows(0, after=None, timeout=240)
        job.wait_for_windows(4, after=first, timeout=240)  # 5 windows: more than persistence_n
        scored = time.time()
        prom.wait_for_evaluation(after=scored + 1.5)  # a scrape and an evaluation after the newest window
        # Prometheus saw the drift gauges of every (feature, method), all below their thresholds
        flags = prom.query('driftline_drift_alert_active{source="payments"}')
        # 3 numeric x (psi, ks, null_rate) + 3 categorical x (psi, chi2, null_rate)
        assert len(flags) == 18 and all(float(s["value"][1]) == 0 for s in flags)
        below = prom.query('driftline_drift_effect{source="payments"} < driftline_drift_threshold')
        assert len(below) == 18
        assert prom.query('driftline_records_read_total{source="payments"}')
        # nothing firing or delivered; a lag alert may be pending while the job catches up after
        # its start (lag > 1000 and growing must last 10 minutes to fire), a drift alert may not
        alerts = prom.prometheus_alerts()
        assert [a for a in alerts if a["state"] == "firing"] == []
        assert {a["labels"]["alertname"] for a in alerts} <= {"DriftlineConsumerLagGrowing"}
        assert webhook.notifications == []
    assert producer.produced >= 5 * WINDOW * RATE


def test_drift_alert_reaches_the_webhook_through_alertmanager(
    stack, spark, kafka_bootstrap, topic_prefix, tmp_path
):
    metrics, webhook, prom = stack
    config = _config(tmp_path, kafka_bootstrap, topic_prefix, "drift")
    with (
        LiveProducer(config, "payments", rate=RATE, drifts=DRIFTS) as producer,
        StreamingJob(spark, config, ["payments"], metrics) as job,
    ):
        job.wait_for_windows(0, after=None, timeout=240)  # the job is scoring clean windows
        producer.start_drift()
        amount = webhook.wait_for_alert("DriftlineFeatureDrift", receiver="webhook",
                                        labels={"source": "payments", "feature": "amount"}, timeout=300)  # fmt: skip
        latency = amount.received_at - producer.first_drifted_at
        country = webhook.wait_for_alert("DriftlineFeatureDrift", receiver="webhook",
                                         labels={"source": "payments", "feature": "country"}, timeout=120)  # fmt: skip
    print(f"event-to-alert latency: {latency:.1f}s")
    assert 0 < latency < 300
    # what the on-call engineer reads: which feature, how much against what threshold, where to look
    assert amount.labels["severity"] in ("warning", "critical") and amount.labels["pipeline"] == "demo"
    assert amount.labels["method"] in ("psi", "ks") and country.labels["method"] in ("psi", "chi2")
    assert amount.annotations["runbook_url"].endswith("runbook.md#driftlinefeaturedrift")
    assert "amount" in amount.annotations["summary"]
    assert "threshold" in amount.annotations["description"]
    # what the retraining webhook needs: the alert's key on the alerts topic, its episode's offsets
    assert amount.annotations["alert_id"] == f"demo/payments/amount/{amount.labels['method']}"
    assert re.fullmatch(r"[^,/]+/\d+:\d+-\d+(,[^,/]+/\d+:\d+-\d+)*", amount.annotations["offsets"]), (
        amount.annotations
    )
    # routing: drift alerts go to the webhook (retraining hook) and on, by severity, to chat or pager
    chat_or_pager = {a.receiver for a in webhook.alerts() if a.labels.get("feature") == "amount"}
    assert {"webhook"} < chat_or_pager
    # nothing about the untouched features, and no pipeline-health alert
    delivered = webhook.alerts()
    assert not [a for a in delivered if a.labels.get("feature") in QUIET]
    assert {a.labels["alertname"] for a in delivered} <= {
        "DriftlineFeatureDrift",
        "DriftlineFeatureDriftSevere",
        "DriftlineSchemaChanged",
    }
    # BR is also schema drift (a value outside the reference vocabulary), and nothing else is
    schema = {(a.labels["kind"], a.labels.get("field")) for a in delivered
              if a.labels["alertname"] == "DriftlineSchemaChanged"}  # fmt: skip
    assert schema <= {("unseen_categories", "country")}
