"""The local stack: docker-compose.kafka.yml, the Prometheus config and the Grafana files.

No Docker engine is needed: the files are parsed and cross-checked, and promtool
checks the Prometheus config and every dashboard query.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import PurePosixPath

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import (
    COMPOSE,
    DASHBOARD,
    GRAFANA,
    PROMETHEUS_CONFIG,
    RULES,
    dump_yaml,
    exported_sample_names,
    load_yaml,
    metric_names_in,
    output_of,
    run,
)

SERVICES = ("kafka", "schema-registry", "prometheus", "alertmanager", "grafana")


def _compose() -> dict:
    return load_yaml(COMPOSE)


def _binds(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repo) of a service's bind mounts."""
    binds = {}
    for volume in _compose()["services"][service].get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                binds[volume["target"]] = volume["source"]
            continue
        host, container = volume.split(":")[:2]
        if host.startswith((".", "/")):
            binds[container] = host
    return binds


def _host_path(service: str, container_path: str):
    """Where a path inside a service's container comes from on the host, if bind-mounted."""
    wanted = PurePosixPath(container_path)
    for target, source in _binds(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return (REPO / source / wanted.relative_to(target)).resolve()
    return None


def test_compose_has_the_services():
    assert set(SERVICES) <= set(_compose()["services"])


def test_the_stack_runs_the_kafka_the_embedded_broker_runs():
    from driftline.jvm import KAFKA_VERSION

    assert _compose()["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


@pytest.mark.parametrize("service", SERVICES)
def test_image_tags_are_pinned(service):
    image = _compose()["services"][service]["image"]
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{service}: {image} has no tag"
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{service}: {image} is not pinned to a release"


@pytest.mark.parametrize("service", SERVICES)
def test_bind_mounts_exist(service):
    for container, host in _binds(service).items():
        assert (REPO / host).exists(), f"{service} mounts {host} at {container}, but it does not exist"


def test_kafka_is_a_single_kraft_node_fit_for_transactions():
    kafka = _compose()["services"]["kafka"]
    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for key in ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"):  # fmt: skip
        assert env[key] == "1", key
    assert "9092:9092" in kafka["ports"]
    assert "healthcheck" in kafka
    registry = _compose()["services"]["schema-registry"]
    assert registry["depends_on"]["kafka"]["condition"] == "service_healthy"
    # the registry reaches the broker on a listener advertised with the service name
    bootstrap = registry["environment"]["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"]
    host_port = bootstrap.partition("://")[2]
    assert host_port.startswith("kafka:") and host_port in env["KAFKA_ADVERTISED_LISTENERS"]


# -- Prometheus -------------------------------------------------------------------------
def test_prometheus_config_is_the_mounted_one():
    assert _host_path("prometheus", "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG.resolve()


def test_rule_files_glob_finds_the_rules_inside_the_container():
    found = []
    for pattern in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        folder = _host_path("prometheus", str(PurePosixPath(pattern).parent))
        assert folder is not None, (
            f"rule_files {pattern}: its folder is not mounted into the prometheus service"
        )
        found += [p for p in folder.iterdir() if fnmatch.fnmatch(p.name, PurePosixPath(pattern).name)]
    assert RULES.resolve() in found


def test_prometheus_scrapes_the_job_and_alerts_the_stacks_alertmanager():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for static in jobs["driftline"]["static_configs"] for t in static["targets"]]
    assert targets == ["host.docker.internal:9464"]
    assert "host.docker.internal:host-gateway" in _compose()["services"]["prometheus"]["extra_hosts"]
    assert "prometheus" in jobs
    alertmanagers = [
        t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    assert "9093:9093" in _compose()["services"]["alertmanager"]["ports"]


def test_promtool_accepts_the_prometheus_config(promtool, tmp_path):
    """On a copy whose rule_files point at the repo, so the rules are loaded and checked too."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["rule_files"] = [str(RULES)]
    dump_yaml(config, tmp_path / "prometheus.yml")
    result = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, output_of(result)
    assert f"Checking {RULES}" in result.stdout and "rules found" in result.stdout, output_of(result)


def test_alertmanager_config_is_the_mounted_one():
    # prom/alertmanager's default --config.file
    assert _host_path("alertmanager", "/etc/alertmanager/alertmanager.yml") == (
        REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    )


# -- Grafana ----------------------------------------------------------------------------
def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and template variable of the dashboard."""
    dashboard = _dashboard()
    found = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"] if isinstance(variable["query"], str) else variable["query"]["query"]
        inner = re.fullmatch(r"label_values\((.+), *\w+\)", query)
        found.append((f"variable {variable['name']}", inner[1] if inner else query))
    return found


def test_grafana_provisioning_points_at_the_mounts():
    datasource = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert (datasource["uid"], datasource["type"], datasource["url"]) == (
        "prometheus", "prometheus", "http://prometheus:9090",
    )  # fmt: skip
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "driftline.yml")["providers"][0]
    assert _host_path("grafana", provider["options"]["path"]) == DASHBOARD.parent.resolve()
    assert _host_path("grafana", "/etc/grafana/provisioning") == (GRAFANA / "provisioning").resolve()
    env = _compose()["services"]["grafana"]["environment"]
    assert (str(env["GF_AUTH_ANONYMOUS_ENABLED"]), env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == ("true", "Viewer")


def test_dashboard_shape():
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"pipeline", "source"}
    assert variables["pipeline"]["query"].startswith("label_values(driftline_records_read_total")
    assert variables["source"]["query"].startswith("label_values(driftline_records_read_total")
    assert dashboard["panels"], "no panels"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} has an empty query"
            assert target["datasource"]["uid"] == "prometheus"


@pytest.mark.parametrize(
    "metric",
    [
        "driftline_drift_score", "driftline_drift_threshold", "driftline_drift_alert_active",
        "driftline_dead_letters_total", "driftline_records_read_total", "driftline_records_total",
        "driftline_consumer_lag_records", "driftline_last_event_timestamp_seconds",
        "driftline_last_record_received_timestamp_seconds", "driftline_batch_duration_seconds_bucket",
        "driftline_records_unreconciled", "driftline_query_up", "driftline_expectation_success_ratio",
    ],
)  # fmt: skip
def test_dashboard_shows(metric):
    assert any(metric in metric_names_in(expr) for _, expr in _expressions())


def test_dashboard_uses_only_exported_metrics():
    unknown = {(where, name) for where, expr in _expressions() for name in metric_names_in(expr)}
    unknown = {(where, name) for where, name in unknown if name not in exported_sample_names()}
    assert unknown == set()


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """promtool parses each query as a recording rule, with Grafana's variables filled in."""
    substitutions = {"$__rate_interval": "1m", "$__interval": "1m", "$pipeline": ".*", "$source": ".*"}
    rules = []
    for number, (_, expr) in enumerate(_expressions()):
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    dump_yaml({"groups": [{"name": "dashboard", "rules": rules}]}, tmp_path / "dashboard.rules.yml")
    result = run(promtool, "check", "rules", tmp_path / "dashboard.rules.yml")
    assert result.returncode == 0, output_of(result)
