"""Paths, tools, the exporter's metric catalogue and compose helpers for the tests of ``deploy/``.

The tests run the real ``promtool``, ``amtool`` and ``alertmanager`` binaries (Debian
packages ``prometheus`` and ``prometheus-alertmanager``). A missing tool fails the
test rather than skipping it: a skipped check would let broken alerts pass.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from prometheus_client import generate_latest
from ruamel.yaml import YAML

from driftline.kafka.broker import free_port
from driftline.metrics import PipelineMetrics
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "driftline.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "driftline.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = REPO / "docker-compose.kafka.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "driftline.json"
RUNBOOK = REPO / "docs" / "runbook.md"
SECRETS = DEPLOY / "secrets"
#: Where compose mounts a service's secret <name> (compose `secrets:`, file-based).
SECRETS_MOUNT = "/run/secrets/"

INSTALL_HINT = (
    "`make test` installs it (apt-get install prometheus prometheus-alertmanager); by hand on "
    "Debian/Ubuntu: sudo apt-get install -y prometheus prometheus-alertmanager"
)

#: The sample names a metric family of each type exposes, from the family name.
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "untyped": ("",),
}
_TYPE_LINE = re.compile(r"# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<type>\w+)")
_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DRIFTLINE_NAME = re.compile(r"driftline_[a-z_]+")


def exposition(metrics: PipelineMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def declared_sample_names(text: str) -> set[str]:
    """Sample names derived from the ``# TYPE`` lines, which exist before any labelled child.

    prometheus-client writes a counter's TYPE line with or without ``_total`` depending
    on its version; both give ``<base>_total``.
    """
    names = set()
    for line in text.splitlines():
        declared = _TYPE_LINE.fullmatch(line)
        if declared is None:
            continue
        name, kind = declared["name"], declared["type"]
        if kind == "counter":
            name = name.removesuffix("_total")
        names.update(name + suffix for suffix in _SAMPLE_SUFFIXES[kind])
    return names


def sample_names(text: str) -> set[str]:
    """The names of the samples actually present in an exposition."""
    return {_SAMPLE_NAME.match(line)[0] for line in text.splitlines() if line and not line.startswith("#")}


def exported_sample_names() -> frozenset[str]:
    """Every sample name the job's exporter can serve (driftline.metrics.PipelineMetrics)."""
    return frozenset(declared_sample_names(exposition(PipelineMetrics("p"))))


def metric_names_in(text: str) -> set[str]:
    """The driftline metric names a PromQL expression (or a template) refers to."""
    return set(_DRIFTLINE_NAME.findall(text))


def load_yaml(path: Path):
    return YAML(typ="safe", pure=True).load(path)


def dump_yaml(data, path: Path) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep PromQL and templates on one line
    yaml.dump(data, path)


def alerting_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lowercase, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(m[1]) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", RUNBOOK.read_text(), re.M)}


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"{' or '.join(names)} not found on PATH; tests/deploy need it. {INSTALL_HINT}", pytrace=False
    )


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return _tool("prometheus-alertmanager", "alertmanager")


# -- compose -----------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:-|-|:\?|\?)(?P<argument>.*))?", re.S)


def compose_variables(text: str) -> dict[str, str | None]:
    """Variable name -> its ``${NAME:-default}`` default (``None`` without one) in ``text``."""
    found = {}
    for match in _VARIABLE.finditer(text):
        if match["escaped"]:
            continue
        braced = _BRACED.fullmatch(match["braced"]) if match["braced"] is not None else None
        if braced is None:
            found.setdefault(match["named"], None)
        else:
            found[braced["name"]] = braced["argument"] if braced["operator"] in (":-", "-") else None
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with compose's variable syntax resolved against ``env`` (``$$`` is a literal ``$``).

    >>> interpolate("${BIND:-127.0.0.1}:9092:9092", {})
    '127.0.0.1:9092:9092'
    >>> interpolate("${BIND:-127.0.0.1}:9092:9092", {"BIND": "0.0.0.0"})
    '0.0.0.0:9092:9092'
    >>> interpolate("$BIND:9092", {})
    ':9092'
    """

    def resolve(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            raise ValueError(f"invalid compose interpolation {match[0]!r}")
        name, operator, argument = braced["name"], braced["operator"], braced["argument"]
        value = env.get(name)
        unset_or_empty = not value if operator and operator.startswith(":") else value is None
        if operator in (":-", "-") and unset_or_empty:
            return argument
        if operator in (":?", "?") and unset_or_empty:
            raise ValueError(f"{name} is required: {argument}")
        return value or ""

    return _VARIABLE.sub(resolve, text)


def interpolated(document: Any, env: Mapping[str, str]) -> Any:
    """A parsed compose file with every string value interpolated, as compose does it."""
    if isinstance(document, dict):
        return {key: interpolated(value, env) for key, value in document.items()}
    if isinstance(document, list):
        return [interpolated(value, env) for value in document]
    return interpolate(document, env) if isinstance(document, str) else document


class PublishedPort(NamedTuple):
    host_ip: str  # "" means every interface of the host
    published: str
    target: str


def published_port(entry: str | int | dict) -> PublishedPort:
    """One (interpolated) ``ports`` entry, short syntax ``[IP:][HOST:]CONTAINER[/proto]`` or long.

    >>> published_port("127.0.0.1:9092:9092")
    PublishedPort(host_ip='127.0.0.1', published='9092', target='9092')
    >>> published_port("9092:9092")
    PublishedPort(host_ip='', published='9092', target='9092')
    >>> published_port("[::1]:3000:3000/tcp")
    PublishedPort(host_ip='::1', published='3000', target='3000')
    """
    if isinstance(entry, dict):
        return PublishedPort(
            str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry["target"])
        )
    spec = str(entry).partition("/")[0]
    host_ip = ""
    if spec.startswith("["):
        host_ip, _, spec = spec[1:].partition("]:")
    parts = spec.split(":")
    if len(parts) == 3:
        host_ip, parts = parts[0], parts[1:]
    published, target = parts if len(parts) == 2 else ("", parts[0])
    return PublishedPort(host_ip, published, target)


# -- secrets -----------------------------------------------------------------------------
#: Keys whose value is a credential (lower case); the *_file form of each is the allowed one.
_SECRET_KEYS = {"api_url", "slack_api_url", "routing_key", "service_key", "webhook_url", "url_secret"}
_SECRET_KEY_WORDS = re.compile(r"password|passwd|secret|token|api_?key|private_?key|credentials")
_SECRET_IN_TEXT = {
    "a Slack webhook URL": re.compile(r"hooks\.slack\.com/services/"),
    "a password in a URL": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
    "a credential in a URL query": re.compile(
        r"[?&](?:token|key|secret|password|api_?key|access_token|sig|signature)=", re.I
    ),
}


def _is_secret_key(key: str) -> bool:
    key = key.lower()
    if key.endswith("_file"):  # Alertmanager's api_url_file, Grafana's GF_..._PASSWORD__FILE
        return False
    return key in _SECRET_KEYS or bool(_SECRET_KEY_WORDS.search(key))


def _holds_a_literal_secret(key: str, value: Any) -> bool:
    if key.lower() == "securejsondata":  # Grafana provisioning: everything in it is a secret
        return bool(value)
    return _is_secret_key(key) and value not in (None, "") and not isinstance(value, dict | list)


def inline_secrets(document: Any, where: str = "") -> list[str]:
    """Every credential written as a literal in a parsed YAML/JSON document, as ``where: why``.

    Compose ``environment`` lists (``KEY=value``) are checked like mappings.
    """
    found = []
    if isinstance(document, list):
        for index, item in enumerate(document):
            if isinstance(item, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", item, re.S):
                found += inline_secrets(dict([item.split("=", 1)]), f"{where}[{index}]")
            else:
                found += inline_secrets(item, f"{where}[{index}]")
    elif isinstance(document, dict):
        for key, value in document.items():
            path = f"{where}.{key}"
            if _holds_a_literal_secret(str(key), value):
                found.append(f"{path}: a literal {key}")
            found += inline_secrets(value, path)
    elif isinstance(document, str):
        found += [f"{where}: {why}" for why, pattern in _SECRET_IN_TEXT.items() if pattern.search(document)]
    return found


def file_references(document: Any) -> list[str]:
    """The values of every ``*_file`` key (Alertmanager) and ``*__FILE`` variable (Grafana)."""
    if isinstance(document, list):
        return [path for item in document for path in file_references(item)]
    if isinstance(document, dict):
        found = []
        for key, value in document.items():
            if str(key).lower().endswith("_file") and isinstance(value, str):
                found.append(value)
            found += file_references(value)
        return found
    return []


# -- a real Alertmanager -----------------------------------------------------------------
def http_json(url: str, body: object | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip().startswith(("[", "{")) else text


@contextlib.contextmanager
def alertmanager_process(binary: str, config: Path, folder: Path, timeout: float = 30) -> Iterator[str]:
    """Run ``binary`` with ``config`` on a free port of 127.0.0.1, gossip off; yield its URL once ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "alertmanager.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    http_json(f"{url}/-/ready")
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"alertmanager did not start:\n{log_path.read_text()}")
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)
