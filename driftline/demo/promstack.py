"""Real Prometheus and Alertmanager processes on 127.0.0.1, for tests, the demo and benchmarks.

Everything runs on this machine, in the calling process or as its children:

* :class:`WebhookReceiver` is an HTTP server on a daemon thread of the *calling*
  process. Alertmanager POSTs its webhook notifications to it and it records them.
* :class:`PromStack` starts ``alertmanager`` and then ``prometheus`` as *child
  processes*, each on its own free port of 127.0.0.1, with configs, data and logs in
  a work directory. Prometheus scrapes the given targets (e.g. the Spark driver's
  ``prometheus_client`` exporter), evaluates the given rule files and sends alerts to
  that Alertmanager; Alertmanager routes them with the shipped route tree to the
  webhook receiver (see :func:`alertmanager_config_for_test`).

Timing, from a metric changing to the webhook being called (the event-to-alert
latency that benchmarks measure):

1. the next scrape of the target sees the new value: at most ``scrape_interval``;
2. the next evaluation of the rule group fires the alert: at most
   ``evaluation_interval`` (plus the rule's ``for:`` duration, if any);
3. Prometheus pushes the alert to Alertmanager at once (milliseconds);
4. Alertmanager notifies a *new* group after ``group_wait``; an alert that joins an
   existing group, and a resolution, wait for the group's next ``group_interval`` tick.

With the 1 s defaults a firing alert reaches the webhook within about 3 s (about 2 s
measured); a resolution within about 3 s too (1-2 s measured). Alertmanager repeats
an unchanged group only after ``repeat_interval`` (1 h here, so never during a test).

The configs are written as JSON, which is valid YAML, so neither PyYAML nor any
HTTP library is needed: only the standard library.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from driftline.errors import ConfigError, DriftlineError
from driftline.kafka.broker import free_port

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
MISSING_HINT = (
    "Prometheus and Alertmanager binaries not found: install them with "
    "`sudo apt-get install -y prometheus prometheus-alertmanager` (or run `make test`, "
    "which installs them), or point DRIFTLINE_PROMETHEUS / DRIFTLINE_ALERTMANAGER at them."
)
# Notifier-specific ``global`` keys; none is used once every receiver is a webhook.
_NOTIFIER_GLOBAL_PREFIXES = (
    "slack_",
    "pagerduty_",
    "opsgenie_",
    "victorops_",
    "wechat_",
    "telegram_",
    "webex_",
    "smtp_",
)
_ROUTE_TIMERS = ("group_wait", "group_interval", "repeat_interval")
_T = TypeVar("_T")


class PromStackError(DriftlineError, OSError):
    """Prometheus or Alertmanager cannot be found, started or queried."""


@dataclass(frozen=True)
class PromBinaries:
    """Paths of the two executables."""

    prometheus: str
    alertmanager: str


def find_binaries(env: Mapping[str, str] | None = None) -> PromBinaries | None:
    """Locate ``prometheus`` and ``alertmanager``; ``None`` when either is missing.

    ``DRIFTLINE_PROMETHEUS`` / ``DRIFTLINE_ALERTMANAGER`` in ``env`` (default
    ``os.environ``) override the search; otherwise ``PATH`` is searched, accepting
    Debian's name ``prometheus-alertmanager`` as well as ``alertmanager``.
    """
    env = os.environ if env is None else env
    search_path = env.get("PATH", os.defpath)

    def locate(override: str, *names: str) -> str | None:
        if env.get(override):
            return shutil.which(env[override], path=search_path)
        return next((found for name in names if (found := shutil.which(name, path=search_path))), None)

    prometheus = locate("DRIFTLINE_PROMETHEUS", "prometheus")
    alertmanager = locate("DRIFTLINE_ALERTMANAGER", "alertmanager", "prometheus-alertmanager")
    if prometheus is None or alertmanager is None:
        return None
    return PromBinaries(prometheus=prometheus, alertmanager=alertmanager)


@dataclass(frozen=True)
class Notification:
    """One webhook POST: ``receiver`` is the last segment of the URL path."""

    receiver: str
    payload: dict[str, Any]
    received_at: float


@dataclass(frozen=True)
class AlertRecord:
    """One alert inside a notification, flattened."""

    receiver: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    received_at: float


class _Handler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            self.send_error(400, "body is not JSON")
            return
        receiver = unquote(urlsplit(self.path).path.rstrip("/").rpartition("/")[2])
        self.server.record(Notification(receiver, payload, time.time()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("webhook %s", format % args)


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, record: Callable[[Notification], None]) -> None:
        super().__init__((HOST, 0), _Handler)
        self.record = record


def _flatten(notifications: list[Notification], receiver: str | None) -> list[AlertRecord]:
    return [
        AlertRecord(
            receiver=n.receiver,
            status=alert.get("status", ""),
            labels=alert.get("labels", {}),
            annotations=alert.get("annotations", {}),
            received_at=n.received_at,
        )
        for n in notifications
        if receiver is None or n.receiver == receiver
        for alert in n.payload.get("alerts", [])
    ]


class WebhookReceiver:
    """Records Alertmanager webhook notifications, on a daemon thread of this process.

    Every path is accepted; :meth:`url` gives one path per receiver name so the
    recorded ``receiver`` says which Alertmanager receiver a notification went to.
    """

    def __init__(self) -> None:
        self._notifications: list[Notification] = []
        self._changed = threading.Condition()
        self._server = _WebhookServer(self._record)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, receiver_name: str) -> str:
        """The webhook URL for Alertmanager receiver ``receiver_name``."""
        return f"http://{HOST}:{self.port}/alertmanager/{quote(receiver_name, safe='')}"

    def _record(self, notification: Notification) -> None:
        with self._changed:
            self._notifications.append(notification)
            self._changed.notify_all()

    @property
    def notifications(self) -> list[Notification]:
        """A copy of what has arrived so far, oldest first."""
        with self._changed:
            return list(self._notifications)

    def alerts(self, receiver: str | None = None) -> list[AlertRecord]:
        """Every alert of every notification (to ``receiver`` only, when given), oldest first."""
        return _flatten(self.notifications, receiver)

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float = 30.0) -> Notification:
        """The first notification, already received or arriving within ``timeout`` seconds,
        that satisfies ``predicate``; :class:`TimeoutError` listing what arrived otherwise."""
        return self._wait(lambda: next(filter(predicate, self._notifications), None), timeout)

    def wait_for_alert(
        self,
        alertname: str,
        *,
        status: str = "firing",
        receiver: str | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> AlertRecord:
        """The first alert named ``alertname`` with ``status`` (and ``receiver``, ``labels``
        when given), waiting up to ``timeout`` seconds like :meth:`wait_for`."""
        wanted = {"alertname": alertname, **(labels or {})}

        def find() -> AlertRecord | None:
            matches = (
                a
                for a in _flatten(self._notifications, receiver)
                if a.status == status and wanted.items() <= a.labels.items()
            )
            return next(matches, None)

        return self._wait(find, timeout)

    def _wait(self, find: Callable[[], _T | None], timeout: float) -> _T:
        with self._changed:
            found = self._changed.wait_for(find, timeout)
            if found is None:
                received = [(a.receiver, a.status, a.labels) for a in _flatten(self._notifications, None)]
                raise TimeoutError(f"nothing matching within {timeout}s; received: {received or 'nothing'}")
            return found

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def alertmanager_config_for_test(
    shipped: Mapping[str, Any],
    webhook: WebhookReceiver,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """The shipped Alertmanager config with every notifier pointed at ``webhook``.

    The ``route`` tree, ``inhibit_rules`` and time intervals are kept, so the test
    exercises the shipped routing. Each receiver's notifier configs (every key ending
    in ``_configs``) become one webhook to ``webhook.url(<receiver name>)`` with
    ``send_resolved``; a receiver with no notifier at all stays a deliberate blackhole.
    The timers are set on the root route and removed from child routes, which inherit
    them. ``templates`` and notifier-specific ``global`` keys (``slack_api_url``,
    ``pagerduty_url``, ...) are dropped. ``shipped`` is not modified.
    """
    if "route" not in shipped:
        raise ConfigError(
            "alertmanager config: a root 'route' is required; found keys: " + ", ".join(shipped)
        )
    config = copy.deepcopy({key: value for key, value in shipped.items() if key != "templates"})
    kept_global = {
        key: value
        for key, value in config.pop("global", {}).items()
        if not key.startswith(_NOTIFIER_GLOBAL_PREFIXES)
    }
    if kept_global:
        config["global"] = kept_global
    config["receivers"] = [_to_webhook(receiver, webhook) for receiver in config.get("receivers", [])]
    config["route"] = {
        **_without_timers(config["route"]),
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }
    return config


#: The alert rules and routing tree the project ships, where a checkout of the repository has them.
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SHIPPED_RULES = DEPLOY / "prometheus" / "rules" / "driftline.rules.yml"
SHIPPED_ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def shipped_stack(
    workdir: Path,
    *,
    scrape_targets: list[str],
    webhook: WebhookReceiver,
    binaries: PromBinaries | None = None,
) -> PromStack:
    """A :class:`PromStack` with the shipped rules and routing tree, every receiver sent to ``webhook``
    (see :func:`alertmanager_config_for_test`); enter it to start Prometheus and Alertmanager."""
    import yaml

    routing = alertmanager_config_for_test(yaml.safe_load(SHIPPED_ALERTMANAGER.read_text()), webhook)
    return PromStack(workdir, scrape_targets=scrape_targets, rule_files=[SHIPPED_RULES],
                     alertmanager_config=routing, binaries=binaries)  # fmt: skip


def _to_webhook(receiver: dict[str, Any], webhook: WebhookReceiver) -> dict[str, Any]:
    notifiers = [key for key in receiver if key.endswith("_configs")]
    if not any(receiver[key] for key in notifiers):
        return receiver
    kept = {key: value for key, value in receiver.items() if key not in notifiers}
    return {**kept, "webhook_configs": [{"url": webhook.url(receiver["name"]), "send_resolved": True}]}


def _without_timers(route: dict[str, Any]) -> dict[str, Any]:
    stripped = {key: value for key, value in route.items() if key not in _ROUTE_TIMERS}
    if "routes" in route:
        stripped["routes"] = [_without_timers(child) for child in route["routes"]]
    return stripped


class PromStack:
    """Alertmanager then Prometheus as child processes on free ports of 127.0.0.1.

    A context manager: entering writes ``alertmanager.yml`` and ``prometheus.yml`` in
    ``workdir`` (JSON), starts both with data in ``workdir/*-data`` and output in
    ``workdir/alertmanager.log`` / ``prometheus.log``, and returns once both answer
    ``/-/ready`` and Prometheus has discovered the Alertmanager; exiting terminates
    Prometheus, then Alertmanager (SIGTERM, SIGKILL after 10 s). Entering takes about
    5 s: Prometheus hands statically configured targets and Alertmanagers to its
    scrape and notify managers only on its fixed 5 s discovery tick, so the first
    scrape (see :meth:`wait_for_scrape`) comes at about the same time.
    Prometheus scrapes ``scrape_targets`` (``host:port``) as job ``job`` every
    ``scrape_interval``, evaluates ``rule_files`` every ``evaluation_interval`` and
    sends alerts to the Alertmanager, which runs ``alertmanager_config`` (typically
    from :func:`alertmanager_config_for_test`) with gossip disabled. See the module
    docstring for the resulting event-to-notification latency.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        scrape_targets: list[str],
        rule_files: list[Path],
        alertmanager_config: Mapping[str, Any],
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        job: str = "driftline",
        binaries: PromBinaries | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.scrape_targets = list(scrape_targets)
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.alertmanager_config = dict(alertmanager_config)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.job = job
        self.startup_timeout = startup_timeout
        self._binaries = binaries
        self._processes = contextlib.ExitStack()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self.prometheus_url = ""
        self.alertmanager_url = ""

    @property
    def prometheus_log(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def alertmanager_log(self) -> Path:
        return self.workdir / "alertmanager.log"

    def __enter__(self) -> PromStack:
        binaries = self._binaries or find_binaries()
        if binaries is None:
            raise PromStackError(MISSING_HINT)
        missing = [str(path) for path in self.rule_files if not path.is_file()]
        if missing:
            raise ConfigError(f"rule_files: no such file(s): {', '.join(missing)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_alertmanager(binaries.alertmanager)
            self._start_prometheus(binaries.prometheus)
            # Alerts fired before Prometheus knows its Alertmanager are dropped and only
            # resent after --rules.alert.resend-delay (1 min), which would skew latencies.
            _poll(self.alertmanager_discovered, self.startup_timeout, "prometheus to discover alertmanager")
        except BaseException:
            self._processes.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._processes.close()

    def stop(self, name: str) -> None:
        """Stop ``"prometheus"`` or ``"alertmanager"`` (SIGTERM; an outage, for fault tests)."""
        _stop(self._running[name])

    def start(self, name: str) -> None:
        """Start a stopped ``"prometheus"`` or ``"alertmanager"`` again, on the same address
        and data folder, and wait until it is ready."""
        if self._running[name].poll() is None:
            return
        binaries = self._binaries or find_binaries()
        if name == "alertmanager":
            self._start_alertmanager(binaries.alertmanager, urlsplit(self.alertmanager_url).netloc)
        else:
            self._start_prometheus(binaries.prometheus, urlsplit(self.prometheus_url).netloc)

    def _start_alertmanager(self, binary: str, address: str | None = None) -> None:
        address = address or f"{HOST}:{free_port(HOST)}"
        config = self.workdir / "alertmanager.yml"
        config.write_text(json.dumps(self.alertmanager_config, indent=2))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",
        ]
        self.alertmanager_url = f"http://{address}"
        self._start("alertmanager", argv, self.alertmanager_url, self.alertmanager_log)

    def _start_prometheus(self, binary: str, address: str | None = None) -> None:
        address = address or f"{HOST}:{free_port(HOST)}"
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps(self._prometheus_config(), indent=2))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address={address}",
            "--web.enable-lifecycle",
        ]
        self.prometheus_url = f"http://{address}"
        self._start("prometheus", argv, self.prometheus_url, self.prometheus_log)

    def _prometheus_config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [urlsplit(self.alertmanager_url).netloc]}]}]
            },
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.scrape_targets}]}],
        }

    def _start(self, name: str, argv: list[str], url: str, log_path: Path) -> None:
        log = self._processes.enter_context(log_path.open("ab"))
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        self._processes.callback(_stop, process)
        self._running[name] = process
        logger.info("promstack_start name=%s pid=%d url=%s log=%s", name, process.pid, url, log_path)

        def ready() -> bool:
            if process.poll() is not None:
                raise PromStackError(
                    f"{name} exited with code {process.returncode} before it was ready; {_tail(log_path)}"
                )
            return _ready(url)

        try:
            _poll(ready, self.startup_timeout, f"{name} to answer {url}/-/ready")
        except TimeoutError as exc:
            raise PromStackError(f"{exc}; {_tail(log_path)}") from exc

    def _api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = _get_json(url)
        if body.get("status") != "success":
            raise PromStackError(f"GET {url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant-vector result of PromQL ``expr`` (``/api/v1/query``), evaluated now."""
        return self._api("/api/v1/query", query=expr)["result"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets of ``job`` (``/api/v1/targets``)."""
        active = self._api("/api/v1/targets", state="active")["activeTargets"]
        return [target for target in active if target.get("scrapePool") == self.job]

    def targets_up(self) -> bool:
        """True when ``job`` has targets and each was last scraped successfully."""
        targets = self.targets()
        return bool(targets) and all(target["health"] == "up" for target in targets)

    def wait_for_scrape(self, timeout: float = 30.0) -> None:
        """Return once every target of ``job`` is up (within one ``scrape_interval`` normally)."""
        _poll(self.targets_up, timeout, f"every target of job {self.job!r} to be up", self._target_states)

    def _target_states(self) -> str:
        return repr([(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets()])

    def alertmanager_discovered(self) -> bool:
        """True once Prometheus will send alerts to the Alertmanager (``/api/v1/alertmanagers``)."""
        return bool(self._api("/api/v1/alertmanagers")["activeAlertmanagers"])

    def rule_groups(self) -> list[dict[str, Any]]:
        """The loaded rule groups with their rules and state (``/api/v1/rules``)."""
        return self._api("/api/v1/rules")["groups"]

    def wait_for_evaluation(self, after: float, timeout: float = 30.0) -> float:
        """Wait until every rule group was evaluated later than ``after`` (a ``time.time()``);
        return the earliest of those evaluation times."""

        def evaluated() -> float | None:
            groups = self.rule_groups()
            if not groups:
                raise PromStackError(f"no rule groups loaded from {[str(p) for p in self.rule_files]}")
            earliest = min(datetime.fromisoformat(group["lastEvaluation"]).timestamp() for group in groups)
            return earliest if earliest > after else None

        return _poll(evaluated, timeout, f"every rule group to be evaluated after {after}")

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts as Prometheus sees them (``/api/v1/alerts``)."""
        return self._api("/api/v1/alerts")["alerts"]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds, with their receivers and status (``/api/v2/alerts``)."""
        return _get_json(f"{self.alertmanager_url}/api/v2/alerts")


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise PromStackError(f"GET {url}: HTTP {exc.code}: {detail}") from exc
    except OSError as exc:
        raise PromStackError(f"GET {url}: {exc}") from exc


def _poll(
    condition: Callable[[], _T], timeout: float, waiting_for: str, state: Callable[[], str] | None = None
) -> _T:
    """Call ``condition`` every 50 ms until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            detail = f": {state()}" if state else ""
            raise TimeoutError(f"gave up waiting {timeout}s for {waiting_for}{detail}")
        time.sleep(0.05)
    return result


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log_path: Path, lines: int = 20) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return f"last lines of {log_path}:\n" + "\n".join(text.splitlines()[-lines:])
