"""The Prometheus + Alertmanager harness, against the real binaries (never skipped)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from driftline.demo.promstack import (
    MISSING_HINT,
    PromBinaries,
    PromStack,
    PromStackError,
    WebhookReceiver,
    alertmanager_config_for_test,
    find_binaries,
)

SHIPPED = {
    "global": {
        "resolve_timeout": "5m",
        "slack_api_url": "https://hooks.slack.invalid/x",
        "pagerduty_url": "https://pd.invalid",
    },
    "templates": ["/etc/driftline/*.tmpl"],
    "route": {
        "receiver": "chat",
        "group_by": ["alertname", "source"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": [
            {
                "receiver": "pager",
                "matchers": ['severity="critical"'],
                "continue": True,
                "group_wait": "10s",
                "routes": [{"receiver": "hook", "matchers": ['team="data"'], "repeat_interval": "1h"}],
            },
            {"receiver": "blackhole", "matchers": ['alertname="Watchdog"']},
        ],
    },
    "inhibit_rules": [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["source"],
        }
    ],
    "receivers": [
        {"name": "chat", "slack_configs": [{"channel": "#drift", "title": '{{ template "x" . }}'}]},
        {
            "name": "pager",
            "pagerduty_configs": [{"routing_key": "secret"}],
            "email_configs": [{"to": "a@b.c"}],
        },
        {"name": "hook", "webhook_configs": [{"url": "https://example.invalid/hook"}]},
        {"name": "blackhole"},
    ],
}


@pytest.fixture
def binaries() -> PromBinaries:
    found = find_binaries()
    if found is None:
        pytest.fail(MISSING_HINT)
    return found


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_config_for_test_keeps_routing_and_points_every_notifier_at_the_webhook(
    webhook: WebhookReceiver,
) -> None:
    original = json.loads(json.dumps(SHIPPED))

    config = alertmanager_config_for_test(
        SHIPPED, webhook, group_wait="2s", group_interval="3s", repeat_interval="1h"
    )

    assert original == SHIPPED, "the shipped config must not be modified"
    assert config["inhibit_rules"] == SHIPPED["inhibit_rules"]
    assert "templates" not in config
    assert config["global"] == {"resolve_timeout": "5m"}
    assert config["route"] == {
        "receiver": "chat",
        "group_by": ["alertname", "source"],
        "group_wait": "2s",
        "group_interval": "3s",
        "repeat_interval": "1h",
        "routes": [
            {
                "receiver": "pager",
                "matchers": ['severity="critical"'],
                "continue": True,
                "routes": [{"receiver": "hook", "matchers": ['team="data"']}],
            },
            {"receiver": "blackhole", "matchers": ['alertname="Watchdog"']},
        ],
    }
    assert config["receivers"] == [
        {"name": name, "webhook_configs": [{"url": webhook.url(name), "send_resolved": True}]}
        for name in ("chat", "pager", "hook")
    ] + [{"name": "blackhole"}]
    assert webhook.url("chat").endswith("/chat") and webhook.url("chat").startswith("http://127.0.0.1:")


def test_webhook_records_notifications_per_receiver_and_times_out_with_what_it_got(
    webhook: WebhookReceiver,
) -> None:
    payload = {
        "receiver": "team chat",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "A", "x": "1"}, "annotations": {"summary": "s"}}
        ],
    }
    request = urllib.request.Request(
        webhook.url("team chat"), data=json.dumps(payload).encode(), method="POST"
    )
    before = time.time()
    urllib.request.urlopen(request, timeout=5).close()

    got = webhook.wait_for(lambda n: n.receiver == "team chat", timeout=5)
    assert got.payload == payload and got.received_at >= before
    [alert] = webhook.alerts("team chat")
    assert (alert.receiver, alert.status, alert.labels, alert.annotations) == (
        "team chat",
        "firing",
        {"alertname": "A", "x": "1"},
        {"summary": "s"},
    )
    assert webhook.alerts("other") == []
    assert webhook.wait_for_alert("A", labels={"x": "1"}, timeout=0) == alert
    with pytest.raises(
        TimeoutError,
        match=r"nothing matching within 0.2s; received: \[\('team chat', 'firing', \{'alertname': 'A'",
    ):
        webhook.wait_for_alert("A", status="resolved", timeout=0.2)


def test_find_binaries_honours_env_overrides(binaries: PromBinaries) -> None:
    env = {
        "PATH": "/nonexistent",
        "DRIFTLINE_PROMETHEUS": binaries.prometheus,
        "DRIFTLINE_ALERTMANAGER": binaries.alertmanager,
    }
    assert find_binaries(env) == binaries
    assert find_binaries({**env, "DRIFTLINE_ALERTMANAGER": "/nonexistent/alertmanager"}) is None
    assert find_binaries({"PATH": "/nonexistent"}) is None


def test_start_failure_reports_the_log_tail(
    tmp_path: Path, binaries: PromBinaries, webhook: WebhookReceiver
) -> None:
    rules = tmp_path / "bad.rules.yml"
    rules.write_text('{"groups": [{"name": "bad", "rules": [{"alert": "Broken", "expr": "sum(("}]}]}')
    config = alertmanager_config_for_test(
        {"route": {"receiver": "chat"}, "receivers": [{"name": "chat"}]}, webhook
    )

    stack = PromStack(
        tmp_path / "stack",
        scrape_targets=[],
        rule_files=[rules],
        alertmanager_config=config,
        binaries=binaries,
    )
    with pytest.raises(
        PromStackError,
        match=r"prometheus exited with code \d+ before it was ready; last lines of .*prometheus\.log:\n(.|\n)*bad\.rules\.yml",
    ):
        stack.__enter__()
    assert stack.alertmanager_url and not _answers(stack.alertmanager_url), "alertmanager must be stopped"


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def exporter() -> Iterator[tuple[str, Gauge]]:
    registry = CollectorRegistry()
    gauge = Gauge("t_flag", "Test flag the alert rule watches.", ["source"], registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_gauge_flip_reaches_the_webhook_and_resolves(
    tmp_path: Path,
    binaries: PromBinaries,
    webhook: WebhookReceiver,
    exporter: tuple[str, Gauge],
    record_property: pytest.RecordProperty,
) -> None:
    target, gauge = exporter
    flag = gauge.labels(source="a")
    flag.set(0)
    rules = tmp_path / "t.rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: t\n"
        "    rules:\n"
        "      - alert: TFlag\n"
        "        expr: t_flag == 1\n"
        "        labels: {severity: warning}\n"
        "        annotations: {summary: 't_flag is up for {{ $labels.source }}'}\n"
    )
    shipped = {
        "route": {
            "receiver": "chat",
            "group_by": ["alertname"],
            "routes": [{"receiver": "pager", "matchers": ['severity="critical"']}],
        },
        "receivers": [
            {"name": "chat", "slack_configs": [{"channel": "#t"}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "k"}]},
        ],
    }
    config = alertmanager_config_for_test(shipped, webhook)

    with PromStack(
        tmp_path / "stack",
        scrape_targets=[target],
        rule_files=[rules],
        alertmanager_config=config,
        binaries=binaries,
    ) as stack:
        stack.wait_for_scrape(timeout=15)
        assert stack.query('t_flag{source="a"}')[0]["value"][1] == "0"
        evaluated = time.time()
        for _ in range(3):  # three evaluations over data scraped with the flag at 0
            evaluated = stack.wait_for_evaluation(after=evaluated, timeout=15)
        assert stack.prometheus_alerts() == []
        assert stack.alertmanager_alerts() == []
        assert webhook.notifications == []

        set_at = time.time()
        flag.set(1)
        firing = webhook.wait_for_alert("TFlag", receiver="chat", labels={"source": "a"}, timeout=20)
        latency = firing.received_at - set_at
        record_property("gauge_to_webhook_seconds", round(latency, 3))
        print(f"gauge-to-webhook latency: {latency:.3f}s")
        assert 0 < latency < 10
        assert firing.labels["severity"] == "warning"
        assert firing.annotations == {"summary": "t_flag is up for a"}
        assert [a["labels"]["alertname"] for a in stack.prometheus_alerts()] == ["TFlag"]

        cleared_at = time.time()
        flag.set(0)
        resolved = webhook.wait_for_alert("TFlag", status="resolved", receiver="chat", timeout=20)
        print(f"gauge-to-resolved latency: {resolved.received_at - cleared_at:.3f}s")
        assert resolved.received_at > cleared_at
        assert webhook.alerts("pager") == []
        first = webhook.wait_for(lambda n: n.receiver == "chat", timeout=0)
        assert first.payload["receiver"] == "chat" and first.payload["status"] == "firing"
