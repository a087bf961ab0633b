"""The demo's observability: the job's exporter, and Prometheus + Alertmanager when installed.

:class:`DemoAlerting` serves the job's metrics on ``[metrics] address:port`` (a free
port if that one is taken) and, when Debian's ``prometheus`` and
``prometheus-alertmanager`` are on the PATH, runs them on 127.0.0.1 with the shipped
rules (``deploy/prometheus/rules``) and routing tree (``deploy/alertmanager``), its
receivers (pager, chat, webhook) redirected to a local webhook server so the demo can
show what would have been delivered. Without them it says so and the demo goes on.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.config import PipelineConfig
from driftline.kafka.broker import port_is_free
from driftline.metrics import PipelineMetrics, serve

logger = logging.getLogger(__name__)


@dataclass
class DemoAlerting:
    config: PipelineConfig
    workdir: Path
    metrics: PipelineMetrics = field(init=False)
    exporter_url: str = field(init=False, default="")
    unavailable: str | None = field(init=False, default=None)  # why there is no Prometheus, if not
    _stack: ExitStack = field(init=False, default_factory=ExitStack)
    _prom: Any = field(init=False, default=None)
    _webhook: Any = field(init=False, default=None)

    def __enter__(self) -> DemoAlerting:
        settings = self.config.metrics
        self.metrics = PipelineMetrics.for_pipeline(self.config)
        port = settings.port if port_is_free(settings.address, settings.port) else 0
        exporter = serve(self.metrics.registry, address=settings.address, port=port)
        self._stack.callback(exporter.close)
        self.exporter_url = exporter.url
        try:
            self._start_prometheus(exporter.port)
        except BaseException:
            self._stack.close()  # no child process or server outlives a failed start
            raise
        return self

    def _start_prometheus(self, port: int) -> None:
        from driftline.demo.promstack import (
            DEPLOY,
            MISSING_HINT,
            SHIPPED_ALERTMANAGER,
            SHIPPED_RULES,
            WebhookReceiver,
            find_binaries,
            shipped_stack,
        )

        binaries = find_binaries()
        if binaries is None:
            self.unavailable = MISSING_HINT
            return
        # a fresh TSDB: series left by an earlier demo (e.g. its stopped queries) must not alert now
        shutil.rmtree(self.workdir, ignore_errors=True)
        if not SHIPPED_RULES.exists() or not SHIPPED_ALERTMANAGER.exists():
            self.unavailable = f"the shipped rules or Alertmanager config are missing under {DEPLOY}"
            return
        self._webhook = self._stack.enter_context(WebhookReceiver())
        host = self.config.metrics.address
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # wildcard: scrape via loopback
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        prom = shipped_stack(self.workdir, scrape_targets=[target], webhook=self._webhook, binaries=binaries)
        self._prom = self._stack.enter_context(prom)
        self._prom.wait_for_scrape()

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def available(self) -> bool:
        return self._prom is not None

    def describe(self) -> str:
        if not self.available:
            return f"metrics at {self.exporter_url}; Prometheus/Alertmanager not running: {self.unavailable}"
        return (f"metrics at {self.exporter_url}, scraped every 1s by Prometheus {self._prom.prometheus_url} "
                f"(shipped rules), alerts routed by Alertmanager {self._prom.alertmanager_url} "
                f"(shipped routes; receivers redirected to a local webhook)")  # fmt: skip

    def active_drift(self) -> set[tuple[str, str, str]]:
        """(source, feature, method) whose alert the job's policy holds firing now (from the gauges)."""
        out = set()
        for family in self.metrics.registry.collect():
            if family.name == "driftline_drift_alert_active":
                for sample in family.samples:
                    if sample.value == 1:
                        labels = sample.labels
                        out.add((labels["source"], labels["feature"], labels["method"]))
        return out

    def deliveries(self, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every firing drift alert reached every receiver Alertmanager routes it
        to (or ``timeout``); return all deliveries.

        The receivers come from Alertmanager itself (``/api/v2/alerts`` lists each alert's
        routed receivers), so a drift alert that already paged but has not yet reached the
        retraining webhook is still waited for."""
        if not self.available:
            return []
        expected = self.active_drift()
        deadline = time.monotonic() + timeout

        def is_drift(labels: dict[str, str]) -> bool:
            return labels.get("alertname", "").startswith("DriftlineFeatureDrift")

        def key(labels: dict[str, str]) -> tuple[str | None, str | None, str | None]:
            return labels.get("source"), labels.get("feature"), labels.get("method")

        def complete() -> bool:
            routed: dict[tuple, set[str]] = {}
            for alert in self._prom.alertmanager_alerts():
                labels = alert.get("labels", {})
                if is_drift(labels) and alert.get("status", {}).get("state") == "active":
                    receivers = {r["name"] for r in alert.get("receivers", [])}
                    routed.setdefault(key(labels), set()).update(receivers)
            delivered = {
                (key(a.labels), a.receiver)
                for a in self._webhook.alerts()
                if a.status == "firing" and is_drift(a.labels)
            }
            return all(
                routed.get(alert) and all((alert, receiver) in delivered for receiver in routed[alert])
                for alert in expected
            )

        while not complete() and time.monotonic() < deadline:
            time.sleep(0.25)
        return [
            {
                "receiver": a.receiver,
                "alertname": a.labels.get("alertname"),
                "status": a.status,
                "severity": a.labels.get("severity"),
                "source": a.labels.get("source"),
                "feature": a.labels.get("feature"),
                "method": a.labels.get("method"),
                "summary": a.annotations.get("summary"),
                "runbook_url": a.annotations.get("runbook_url"),
                "alert_id": a.annotations.get("alert_id"),  # drift alerts: the alerts topic's key
                "offsets": a.annotations.get("offsets"),  # and their episode's Kafka offsets
                "received_at": a.received_at,
            }  # fmt: skip
            for a in self._webhook.alerts()
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "exporter": self.exporter_url,
            "prometheus": self._prom.prometheus_url if self.available else None,
            "alertmanager": self._prom.alertmanager_url if self.available else None,
            "unavailable": self.unavailable,
        }


__all__ = ["DemoAlerting"]
