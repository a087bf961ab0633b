"""The Prometheus alert rules, their promtool unit tests, and the Alertmanager routing.

promtool evaluates the rules on synthetic series (deploy/prometheus/tests); a real
Alertmanager process checks the inhibit rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from driftline.kafka.broker import free_port
from driftline.metrics import BatchCounts, DriftObservation, PipelineMetrics
from tests.deploy.conftest import (
    ALERTMANAGER_CONFIG,
    RULE_TESTS,
    RULES,
    alerting_rules,
    declared_sample_names,
    dump_yaml,
    exported_sample_names,
    exposition,
    load_yaml,
    metric_names_in,
    output_of,
    run,
    runbook_anchors,
    sample_names,
)

RUNBOOK_URL = "https://github.com/driftline/driftline/blob/main/docs/runbook.md#"
ALERTS = [rule["alert"] for rule in alerting_rules()]
RULES_BY_NAME = {rule["alert"]: rule for rule in alerting_rules()}


# -- the rules file ----------------------------------------------------------------------
def test_promtool_accepts_the_rules(promtool):
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, output_of(result)
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout, output_of(result)


def test_the_expected_alerts_exist():
    assert sorted(ALERTS) == sorted(
        [
            "DriftlineFeatureDrift",
            "DriftlineFeatureDriftSevere",
            "DriftlineDeadLetterRateHigh",
            "DriftlineWindowExpectationFailed",
            "DriftlineSourceSilent",
            "DriftlineConsumerLagGrowing",
            "DriftlineQueryDown",
            "DriftlineExporterDown",
            "DriftlineQueryFailing",
            "DriftlineRecordsUnreconciled",
            "DriftlineRecordsLost",
            "DriftlineSourceMostlyLate",
            "DriftlineSchemaChanged",
        ]
    )


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_has_severity_annotations_and_a_runbook_section(alert):
    rule = RULES_BY_NAME[alert]
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert all(annotations[key].strip() for key in ("summary", "description"))
    assert annotations["runbook_url"] == RUNBOOK_URL + alert.lower()
    anchor = annotations["runbook_url"].partition("#")[2]
    assert anchor in runbook_anchors(), f"docs/runbook.md has no heading with anchor #{anchor}"


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_uses_only_exported_metrics(alert):
    rule = RULES_BY_NAME[alert]
    used = metric_names_in(rule["expr"]) | metric_names_in(" ".join(rule["annotations"].values()))
    assert used - exported_sample_names() == set()


def test_declared_names_are_the_names_the_exporter_serves():
    """The TYPE-line derivation agrees with real samples once every family has a child."""
    metrics = PipelineMetrics("p")
    at = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    metrics.query_started("s", now=0)
    metrics.batch_progress("s", seconds=1.5, input_rate=10.0, processed_rate=12.0)
    counts = BatchCounts(
        read=10, valid=7, dead_lettered=2, late=1, by_reason={"RULE_FAILED": 2}, rule_failures={"r": 2},
        rows_checked=9, max_event_time=at, watermark=at,
    )  # fmt: skip
    metrics.batch_committed("s", counts, suite="suite", now=1)
    values = {"feature": "amount", "method": "psi", "score": 0.3, "effect": 0.3, "p_adjusted": 0.001,
              "threshold": 0.2, "drifted": True, "alert_active": True, "window_end": at, "first_flagged": at}  # fmt: skip
    observation = DriftObservation(**{field.name: values[field.name] for field in fields(DriftObservation)})
    metrics.drift_scored("s", [observation])
    metrics.drift_alert_event("s", "amount", "psi", "fired")
    metrics.drift_alert_offsets("s", "amount", "psi", "signals.s/0:10-99")
    metrics.consumer_lag("s", "signals.s", 5)
    metrics.window_expectations("s", [{"window_end": at, "suite": "suite", "expectation": "x:unique",
                                       "success": False, "observed_value": 0.1}])  # fmt: skip
    metrics.report_link("s", "https://dq.example.com/reports/p.html#source-s")
    metrics.breaker_state("s", open_=True, rate=0.4)
    metrics.schema_events("s", [{"kind": "field_all_null", "field": "amount"}])
    metrics.source_topics("s", ["signals.s"])
    metrics.reference("s", "v1")
    metrics.query_terminated("s", failed=True)
    text = exposition(metrics)
    assert sample_names(text) == declared_sample_names(text)
    assert "driftline_records_read_total" in exported_sample_names()
    assert "driftline_batch_duration_seconds_bucket" in exported_sample_names()


# -- promtool unit tests -----------------------------------------------------------------
def test_promtool_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, output_of(result)


def _cases() -> list[dict]:
    return [case for test in load_yaml(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]


@pytest.mark.parametrize("alert", ALERTS)
def test_unit_tests_cover_firing_and_quiet(alert):
    cases = [case for case in _cases() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"no case where {alert} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no case where {alert} stays quiet"
    for case in cases:
        for expected in case.get("exp_alerts") or []:
            # promtool compares labels exactly, so this pins job and instance on the alert
            assert {"severity", "job", "instance"} <= set(expected["exp_labels"])
            # and every annotation: a rule's annotations are exactly its expected ones
            assert set(RULES_BY_NAME[alert]["annotations"]) == set(expected["exp_annotations"])


#: One deliberate bug per alert: the unit tests must catch each of them.
MUTATIONS = [
    ("DriftlineFeatureDrift", "expr", "active == 1", "active >= 0"),
    ("DriftlineFeatureDrift", "description", 'printf "%.3f"', 'printf "%.2f"'),
    ("DriftlineFeatureDriftSevere", "expr", ">= 2.5 *", ">= 2.4 *"),
    ("DriftlineDeadLetterRateHigh", "expr", "> 0.05", "> 0.08"),
    ("DriftlineDeadLetterRateHigh", "expr", 'reason!="LATE_DATA"', 'reason!=""'),
    ("DriftlineDeadLetterRateHigh", "for", "5m", "3m"),
    ("DriftlineSourceSilent", "expr", "> 900", "> 500"),
    ("DriftlineConsumerLagGrowing", "expr", "[10m]) > 0", "[10m]) > -1000"),
    ("DriftlineQueryDown", "expr", "== 0", "<= 1"),
    ("DriftlineExporterDown", "expr", 'up{job="driftline"}', "up"),
    ("DriftlineQueryFailing", "expr", "[15m]", "[30m]"),
    ("DriftlineRecordsUnreconciled", "expr", "!= 0", "> 0"),
    ("DriftlineRecordsLost", "expr", "increase(driftline_offsets_reset_total[30m]) > 0", "vector(0) > 1"),
    ("DriftlineRecordsLost", "expr", "lost_total[30m]", "lost_total[10m]"),
    ("DriftlineSourceMostlyLate", "expr", "> 0.9", "> 0.7"),
    ("DriftlineSourceMostlyLate", "for", "10m", "5m"),
    ("DriftlineSchemaChanged", "expr", "[15m]) > 0", "[15m]) > 1"),
    ("DriftlineSchemaChanged", "expr", "[15m]", "[5m]"),
    ("DriftlineSchemaChanged", "expr", "unless driftline_schema_events_total offset 15m", "unless vector(1)"),
    ("DriftlineFeatureDrift", "offsets", 'label "offsets"', 'label "feature"'),
]


@pytest.mark.parametrize(
    ("alert", "field", "old", "new"), MUTATIONS, ids=[f"{m[0]}-{m[1]}-{m[3]}" for m in MUTATIONS]
)
def test_unit_tests_fail_on_a_broken_rule(promtool, tmp_path, alert, field, old, new):
    rules = load_yaml(RULES)
    rule = next(r for group in rules["groups"] for r in group["rules"] if r.get("alert") == alert)
    holder = rule["annotations"] if field in rule["annotations"] else rule
    assert old in holder[field], f"{alert} {field} no longer contains {old!r}: update MUTATIONS"
    holder[field] = holder[field].replace(old, new)
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    dump_yaml(rules, tmp_path / "rules" / RULES.name)
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    assert run(promtool, "check", "rules", tmp_path / "rules" / RULES.name).returncode == 0

    result = run(promtool, "test", "rules", tmp_path / "tests" / RULE_TESTS.name)

    assert result.returncode != 0, f"the unit tests did not notice {alert}: {old!r} -> {new!r}"
    assert f"alertname: {alert}," in result.stdout + result.stderr, output_of(result)


# -- Alertmanager: config and routing ----------------------------------------------------
def test_amtool_accepts_the_config(amtool):
    result = run(amtool, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, output_of(result)


def test_receiver_names_are_the_contract():
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert sorted(receiver["name"] for receiver in config["receivers"]) == ["chat", "pager", "webhook"]


def _routes(amtool, labels: list[str]) -> list[str]:
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, output_of(result)
    return result.stdout.strip().split(",")


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=DriftlineQueryDown"], ["pager"]),
        (["severity=warning", "alertname=DriftlineFeatureDrift"], ["webhook", "chat"]),
        (["severity=critical", "alertname=DriftlineFeatureDriftSevere"], ["webhook", "pager"]),
        (["severity=warning", "alertname=DriftlineSourceSilent"], ["chat"]),
        (["alertname=SomethingElse"], ["chat"]),
    ],
)
def test_routes(amtool, labels, receivers):
    assert _routes(amtool, labels) == receivers


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_reaches_the_receiver_of_its_severity(amtool, alert):
    severity = RULES_BY_NAME[alert]["labels"]["severity"]
    expected = (["webhook"] if alert.startswith("DriftlineFeatureDrift") else []) + [
        {"critical": "pager", "warning": "chat"}[severity]
    ]
    labels = [f"alertname={alert}", f"severity={severity}", "job=driftline", "instance=h:9464",
              "pipeline=demo", "source=payments", "feature=amount", "method=psi"]  # fmt: skip
    assert _routes(amtool, labels) == expected


# -- Alertmanager: inhibition, on a real process -----------------------------------------
def _request(url: str, body: object | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip().startswith(("[", "{")) else text


@pytest.fixture(scope="module")
def alertmanager(alertmanager_binary, tmp_path_factory) -> str:
    """Alertmanager with the repo's routes and inhibit rules; receivers point nowhere."""
    folder = tmp_path_factory.mktemp("alertmanager")
    config = load_yaml(ALERTMANAGER_CONFIG)
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": "http://127.0.0.1:9/", "send_resolved": True}]}
        for r in config["receivers"]
    ]
    dump_yaml(config, folder / "alertmanager.yml")
    port = free_port()
    log = (folder / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [alertmanager_binary, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            _request(f"{url}/-/ready")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"alertmanager did not start:\n{(folder / 'alertmanager.log').read_text()}")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


def _alert(name: str, instance: str, **labels: str) -> dict:
    severity = RULES_BY_NAME[name]["labels"]["severity"]
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "job": "driftline",
            "instance": instance,
            **labels,
        },
        "annotations": {"summary": name},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


PAYMENTS = {"pipeline": "demo", "source": "payments"}
SENSORS = {"pipeline": "demo", "source": "sensors"}
AMOUNT_PSI = {**PAYMENTS, "feature": "amount", "method": "psi"}

#: (sources, alerts they must inhibit, alerts they must leave active); every alert of a
#: scenario carries the instance its scenario is named after, unless it names another.
INHIBITION = {
    "query-down": (
        [("DriftlineQueryDown", PAYMENTS)],
        [("DriftlineFeatureDrift", {**SENSORS, "feature": "rpm", "method": "ks"}),
         ("DriftlineDeadLetterRateHigh", PAYMENTS), ("DriftlineSourceSilent", SENSORS),
         ("DriftlineConsumerLagGrowing", {**PAYMENTS, "topic": "signals.payments"})],
        [("DriftlineRecordsUnreconciled", PAYMENTS), ("DriftlineFeatureDrift@other-host", AMOUNT_PSI)],
    ),
    "exporter-down": (
        [("DriftlineExporterDown", {})],
        [("DriftlineFeatureDriftSevere", AMOUNT_PSI), ("DriftlineDeadLetterRateHigh", SENSORS)],
        [("DriftlineRecordsUnreconciled", PAYMENTS), ("DriftlineQueryDown", PAYMENTS)],
    ),
    "query-failing": (
        [("DriftlineQueryFailing", PAYMENTS)],
        [("DriftlineSourceSilent", PAYMENTS)],
        [("DriftlineQueryDown", PAYMENTS)],
    ),
    "severe-drift": (
        [("DriftlineFeatureDriftSevere", AMOUNT_PSI)],
        [("DriftlineFeatureDrift", AMOUNT_PSI)],
        [("DriftlineFeatureDrift", {**AMOUNT_PSI, "method": "ks"}),
         ("DriftlineFeatureDrift", {**AMOUNT_PSI, "feature": "risk_score"}),
         ("DriftlineFeatureDrift", {**AMOUNT_PSI, "source": "sensors"})],
    ),
}  # fmt: skip


@pytest.mark.parametrize("scenario", INHIBITION)
def test_inhibit_rules(alertmanager, scenario):
    sources, muted, active = INHIBITION[scenario]

    def build(spec):
        name, labels = spec
        name, _, host = name.partition("@")
        return _alert(name, f"{scenario}{'-' + host if host else ''}:9464", **labels)

    alerts = {kind: [build(spec) for spec in specs] for kind, specs in
              (("source", sources), ("muted", muted), ("active", active))}  # fmt: skip
    _request(f"{alertmanager}/api/v2/alerts", [a for group in alerts.values() for a in group])

    def key(labels: dict) -> tuple:
        return tuple(sorted(labels.items()))

    expected = {key(a["labels"]): "suppressed" for a in alerts["muted"]}
    expected |= {key(a["labels"]): "active" for a in alerts["source"] + alerts["active"]}
    deadline = time.monotonic() + 15
    while True:
        states = {key(a["labels"]): a["status"]["state"] for a in _request(f"{alertmanager}/api/v2/alerts")}
        states = {k: v for k, v in states.items() if k in expected}
        if states == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    wrong = {str(dict(k)): (states.get(k), want) for k, want in expected.items() if states.get(k) != want}
    assert wrong == {}, "labels: (state, expected state)"
