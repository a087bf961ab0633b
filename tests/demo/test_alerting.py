"""The demo without Prometheus: it says why, still serves the metrics, and reports no deliveries."""

from __future__ import annotations

import urllib.request

from driftline.config import load_pipeline
from driftline.demo.alerting import DemoAlerting
from tests.conftest import DEMO_PIPELINE


def test_without_prometheus_the_demo_says_so_and_serves_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PROMETHEUS", str(tmp_path / "no-such-prometheus"))
    config = load_pipeline(DEMO_PIPELINE)
    config = config.model_copy(update={"metrics": config.metrics.model_copy(update={"port": 0})})
    with DemoAlerting(config, tmp_path / "prom") as alerting:
        assert not alerting.available
        assert "apt-get install" in alerting.unavailable and "not running" in alerting.describe()
        alerting.metrics.query_started("payments")
        body = urllib.request.urlopen(alerting.exporter_url, timeout=5).read().decode()
        assert 'driftline_query_up{pipeline="demo",source="payments"} 1.0' in body
        assert alerting.deliveries(timeout=0.1) == []
        assert alerting.as_dict()["prometheus"] is None
