"""The local stack: docker-compose.kafka.yml, the Prometheus config and the Grafana files.

No Docker engine is needed: the files are parsed and cross-checked, promtool checks the
Prometheus config and every dashboard query, and a real Alertmanager reads the secret
files the way the stack mounts them.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import PurePosixPath

import pytest
from ruamel.yaml import YAML

from driftline.demo.promstack import WebhookReceiver
from tests.conftest import REPO
from tests.deploy.conftest import (
    ALERTMANAGER_CONFIG,
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    GRAFANA,
    PROMETHEUS_CONFIG,
    RULES,
    RUNBOOK,
    SECRETS,
    SECRETS_MOUNT,
    alertmanager_process,
    compose_variables,
    dump_yaml,
    exported_sample_names,
    file_references,
    http_json,
    inline_secrets,
    interpolated,
    load_yaml,
    metric_names_in,
    output_of,
    published_port,
    run,
)

SERVICES = ("kafka", "schema-registry", "prometheus", "alertmanager", "grafana")
#: The published port of each service; the stack's clients and docs use these.
PORTS = {"kafka": "9092", "schema-registry": "8081", "prometheus": "9090", "alertmanager": "9093",
         "grafana": "3000"}  # fmt: skip
#: The variables that move the stack off loopback (docs/runbook.md#running-the-compose-stack).
BIND = "DRIFTLINE_BIND"
ADVERTISED_HOST = "DRIFTLINE_KAFKA_ADVERTISED_HOST"


def _compose(env: dict[str, str] | None = None) -> dict:
    """The compose file as compose reads it: variables resolved against ``env`` (none set by default)."""
    return interpolated(load_yaml(COMPOSE), env or {})


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
    assert "PLAINTEXT://127.0.0.1:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for key in ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"):  # fmt: skip
        assert env[key] == "1", key
    assert [published_port(entry) for entry in kafka["ports"]] == [("127.0.0.1", "9092", "9092")]
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
    assert "9093" in [published_port(p).target for p in _compose()["services"]["alertmanager"]["ports"]]


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


def test_grafana_asks_for_a_login_with_the_password_from_a_secret():
    env = _compose()["services"]["grafana"]["environment"]
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]) == "false"
    assert str(env["GF_USERS_ALLOW_SIGN_UP"]) == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == SECRETS_MOUNT + "grafana_admin_password"


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


# -- who can reach the stack --------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_ports_are_published_on_loopback_only(service):
    """None of the services but Grafana authenticates; loopback is their protection."""
    definition = _compose()["services"][service]
    assert definition.get("network_mode") != "host", f"{service} shares the host's network"
    assert [published_port(entry) for entry in definition["ports"]] == [
        ("127.0.0.1", PORTS[service], PORTS[service])
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_one_variable_moves_every_port(service):
    ports = _compose({BIND: "10.0.0.5"})["services"][service]["ports"]
    assert [published_port(entry).host_ip for entry in ports] == ["10.0.0.5"]


def test_kafka_advertises_the_host_clients_connect_to():
    """Default: the published loopback address, so a client on the host reaches the broker
    after bootstrap too; moved off loopback, clients get the advertised host set beside it."""

    def plaintext_listener(env: dict[str, str]) -> str:
        listeners = _compose(env)["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        return next(listener for listener in listeners.split(",") if listener.startswith("PLAINTEXT://"))

    bound = published_port(_compose()["services"]["kafka"]["ports"][0])
    assert plaintext_listener({}) == f"PLAINTEXT://{bound.host_ip}:{bound.published}"
    moved = {BIND: "0.0.0.0", ADVERTISED_HOST: "kafka.example"}
    assert plaintext_listener(moved) == "PLAINTEXT://kafka.example:9092"


def _runbook_section(heading: str) -> str:
    text = RUNBOOK.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_compose_variables_are_documented_with_their_defaults():
    variables = compose_variables(COMPOSE.read_text())
    assert set(variables) == {BIND, ADVERTISED_HOST}
    section = _runbook_section("Running the compose stack")
    for name, default in variables.items():
        assert f"| `{name}` | `{default}` |" in section, f"docs/runbook.md does not document {name}"


# -- secrets ------------------------------------------------------------------------------
def _config_files() -> list:
    """The compose file and every YAML/JSON file under deploy/ but the secrets folder."""
    found = [path for path in DEPLOY.rglob("*") if path.suffix in (".yml", ".yaml", ".json")]
    return [COMPOSE] + sorted(path for path in found if SECRETS not in path.parents)


def _parse(path) -> object:
    return json.loads(path.read_text()) if path.suffix == ".json" else load_yaml(path)


@pytest.mark.parametrize("path", _config_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_secret_is_written_inline(path):
    assert inline_secrets(_parse(path)) == []


@pytest.mark.parametrize(
    ("document", "found"),
    [
        ({"slack_configs": [{"api_url": "https://hooks.slack.com/services/T0/B0/x"}]},
         [".slack_configs[0].api_url: a literal api_url", ".slack_configs[0].api_url: a Slack webhook URL"]),
        ({"pagerduty_configs": [{"routing_key": "R0UT1NG"}]}, [".pagerduty_configs[0].routing_key: a literal routing_key"]),
        ({"http_config": {"basic_auth": {"username": "u", "password": "p"}}},
         [".http_config.basic_auth.password: a literal password"]),
        ({"environment": {"GF_SECURITY_ADMIN_PASSWORD": "admin"}},
         [".environment.GF_SECURITY_ADMIN_PASSWORD: a literal GF_SECURITY_ADMIN_PASSWORD"]),
        ({"environment": ["SCHEMA_REGISTRY_BASIC_AUTH_TOKEN=t"]},
         [".environment[0].SCHEMA_REGISTRY_BASIC_AUTH_TOKEN: a literal SCHEMA_REGISTRY_BASIC_AUTH_TOKEN"]),
        ({"url": "https://retrainer.example/hook?token=abc"}, [".url: a credential in a URL query"]),
        ({"url": "https://user:pw@retrainer.example/hook"}, [".url: a password in a URL"]),
        ({"datasources": [{"secureJsonData": {"httpHeaderValue1": "Bearer x"}}]},
         [".datasources[0].secureJsonData: a literal secureJsonData"]),
        ({"slack_configs": [{"api_url_file": "/run/secrets/slack_api_url"}],
          "pagerduty_configs": [{"routing_key_file": "/run/secrets/key"}],
          "environment": {"GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/secrets/p"},
          "secrets": {"grafana_admin_password": {"file": "./deploy/secrets/grafana_admin_password"}},
          "url": "http://retrainer.example:8080/driftline/alerts"}, []),
    ],
)  # fmt: skip
def test_the_inline_secret_check_tells_literals_from_files(document, found):
    assert inline_secrets(document) == found


def _secret_references(service: str) -> set[str]:
    """Every file a service reads a secret from: its *__FILE variables and the *_file keys of
    the configs bind-mounted into it from the repository."""
    references = set(file_references(_compose()["services"][service].get("environment", {})))
    for host in _binds(service).values():
        mounted = REPO / host
        files = [mounted] if mounted.is_file() else sorted(mounted.rglob("*"))
        for path in files:
            if path.suffix in (".yml", ".yaml", ".json"):
                references |= set(file_references(_parse(path)))
    return references


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_a_service_reads_is_a_compose_secret_of_that_service(service):
    declared = _compose().get("secrets", {})
    granted = set(_compose()["services"][service].get("secrets", []))
    read = set()
    for path in _secret_references(service):
        assert path.startswith(SECRETS_MOUNT), f"{service} reads {path}, which is not a compose secret"
        read.add(path.removeprefix(SECRETS_MOUNT))
    assert read == granted, f"{service}: reads {sorted(read)}, is granted {sorted(granted)}"
    assert granted <= set(declared)


def test_the_stack_keeps_its_credentials_in_secrets():
    assert {name: sorted(_compose()["services"][name].get("secrets", [])) for name in SERVICES} == {
        "kafka": [], "schema-registry": [], "prometheus": [],
        "alertmanager": ["pagerduty_routing_key", "slack_api_url"],
        "grafana": ["grafana_admin_password"],
    }  # fmt: skip


def test_secret_files_live_in_the_git_ignored_folder_and_are_documented():
    declared = _compose()["secrets"]
    readme = (SECRETS / "README.md").read_text()
    for name, secret in declared.items():
        assert set(secret) == {"file"}, f"secret {name}: only file-based secrets are documented"
        assert (REPO / secret["file"]).resolve() == SECRETS.resolve() / name
        assert f"`{name}`" in readme, f"deploy/secrets/README.md does not say what goes in {name}"
    paths = [str(SECRETS / name) for name in declared] + [
        str(SECRETS / "README.md"),
        str(SECRETS / ".gitignore"),
    ]
    result = run("git", "check-ignore", "--no-index", "--verbose", "--non-matching", *paths, cwd=REPO)
    assert result.returncode == 0, output_of(result)
    # "<source>:<line>:<pattern>\t<path>"; a "!" pattern or no source (non-matching) means kept
    ignored = {
        line.rpartition("\t")[2]
        for line in result.stdout.splitlines()
        if line.split("\t")[0] not in ("::", "") and not line.split(":", 2)[2].startswith("!")
    }
    assert ignored == set(paths[: len(declared)]), output_of(result)


def _alertmanager_config_with_secrets_in(folder, secrets: dict[str, str]) -> dict:
    """The shipped config with /run/secrets/<name> read from ``folder``, holding ``secrets``."""
    text = ALERTMANAGER_CONFIG.read_text().replace(SECRETS_MOUNT, f"{folder}/")
    for name, value in secrets.items():
        (folder / name).write_text(value + "\n")
    return YAML(typ="safe", pure=True).load(text)


def test_amtool_accepts_the_config_with_the_secret_files_in_place(amtool, tmp_path):
    """amtool knows every *_file key (Alertmanager 0.25 has no webhook url_file, for one)."""
    names = {path.removeprefix(SECRETS_MOUNT) for path in _secret_references("alertmanager")}
    assert names, "alertmanager.yml reads no secret from a file"
    config = _alertmanager_config_with_secrets_in(tmp_path, {name: f"placeholder {name}" for name in names})
    dump_yaml(config, tmp_path / "alertmanager.yml")
    result = run(amtool, "check-config", tmp_path / "alertmanager.yml")
    assert result.returncode == 0, output_of(result)
    assert "3 receivers" in result.stdout, output_of(result)
    assert sorted(file_references(config)) == sorted(str(tmp_path / name) for name in names)


def test_alertmanager_notifies_with_the_secrets_from_the_files(alertmanager_binary, tmp_path):
    """The receivers chat (Slack) and pager (PagerDuty) send to the URL and with the key read
    from their secret files. The local receiver stands in for Slack and PagerDuty."""
    with WebhookReceiver() as receiver:
        config = _alertmanager_config_with_secrets_in(
            tmp_path,
            {"slack_api_url": receiver.url("slack"), "pagerduty_routing_key": "routing-key-from-file"},
        )
        config["route"].update(group_wait="0s", group_interval="1s")
        receivers = {r["name"]: r for r in config["receivers"]}
        receivers["pager"]["pagerduty_configs"][0]["url"] = receiver.url("pagerduty")
        receivers["webhook"]["webhook_configs"][0]["url"] = receiver.url("retrainer")
        dump_yaml(config, tmp_path / "alertmanager.yml")

        with alertmanager_process(alertmanager_binary, tmp_path / "alertmanager.yml", tmp_path) as url:
            # two instances: a query down on one instance inhibits SourceSilent on the same one
            http_json(f"{url}/api/v2/alerts", [
                {"labels": {"alertname": "DriftlineSourceSilent", "severity": "warning", "instance": "a:9464"}},
                {"labels": {"alertname": "DriftlineQueryDown", "severity": "critical", "instance": "b:9464"}},
            ])  # fmt: skip
            slack = receiver.wait_for(lambda n: n.receiver == "slack", timeout=20)
            pagerduty = receiver.wait_for(lambda n: n.receiver == "pagerduty", timeout=20)

    assert slack.payload["channel"] == "#data-quality"
    assert "DriftlineSourceSilent" in slack.payload["attachments"][0]["title"]
    assert pagerduty.payload["routing_key"] == "routing-key-from-file"
    assert pagerduty.payload["payload"]["summary"]
