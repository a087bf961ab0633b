"""The embedded broker: Apache Kafka in KRaft mode, one combined broker/controller node.

For one machine (the demo, tests, a laptop). The server jars come from Maven Central
(:mod:`driftline.jvm`, fetched by ``make install``); the broker runs them with the
``java`` on PATH (or ``$JAVA_HOME/bin/java``), listens on 127.0.0.1 only, and keeps
everything under one state directory:

==================  ==============================================================
``server.properties``  the node's configuration, written on the first start
``kraft/``             the log directory, formatted once (``StorageTool format``) and
                       kept across restarts: topics, records, transactions survive
``broker.json``        pid, addresses, log path of the running process
``broker.log``         the JVM's stdout and stderr
==================  ==============================================================

Production points the pipeline at a real Kafka cluster instead (``[kafka]
bootstrap_servers``, e.g. ``docker-compose.kafka.yml``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.errors import BrokerError
from driftline.jvm import java_binary as find_java

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
#: Heap for the embedded node: these are 2-core, shared machines running Spark beside it.
HEAP = "-Xms256m -Xmx768m"
NODE_ID = 1


@dataclass(frozen=True)
class BrokerState:
    pid: int
    host: str
    port: int
    controller_port: int
    log_dir: str
    log_path: str
    started_at: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH; :class:`BrokerError` when neither exists."""
    found = find_java()
    if found is None:
        raise BrokerError("the embedded Kafka broker needs Java 17+ ('java' not found; set JAVA_HOME)")
    return found


def kafka_classpath() -> str:
    from driftline.jvm import JarsMissingError
    from driftline.jvm import kafka_classpath as classpath

    try:
        return classpath()
    except JarsMissingError as exc:
        raise BrokerError(str(exc)) from exc


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` (connections of a stopped broker in TIME_WAIT
    do not count: Kafka binds with SO_REUSEADDR as this check does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def answers_metadata(bootstrap: str, timeout: float = 2.0, settings: Mapping[str, Any] | None = None) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds within ``timeout``
    (``settings``: the client's, e.g. SASL credentials)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from driftline.kafka.clients import client_config

    admin = AdminClient(client_config(bootstrap, settings))
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def cluster_id() -> str:
    """A new KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid).

    Like Kafka's own ``Uuid.randomUuid()`` it never starts with ``-``: the storage tool's
    argument parser would read such an id as an option and refuse to format (1 in 64 ids)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def server_properties(
    host: str, port: int, controller_port: int, log_dir: Path, overrides: Mapping[str, Any] | None = None
) -> str:
    """One node that is broker and controller, for one machine: replication 1 everywhere
    (transactions and consumer offsets included), no topic auto-creation (a typo in a
    topic name is an error, not a new topic), records kept until deleted. ``overrides``
    replace or add settings (e.g. a SASL listener and an authorizer)."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.voters": f"{NODE_ID}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # a local broker keeps what it is given; production sets its own retention
        "log.retention.ms": -1,
        "log.segment.bytes": 64 * 1024 * 1024,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        **(overrides or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class EmbeddedBroker:
    """Start, stop and inspect one Apache Kafka (KRaft) node kept under ``state_dir``.

    Examples
    --------
    ``driftline broker start`` is ``EmbeddedBroker(Path(".driftline/broker")).start()``.
    """

    def __init__(
        self,
        state_dir: Path | str,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        overrides: Mapping[str, Any] | None = None,
        client: Mapping[str, Any] | None = None,
    ):
        """``overrides``: server properties over :func:`server_properties`' own; ``client``:
        the librdkafka settings the start-up check connects with (when the listener wants
        credentials)."""
        self.state_dir = Path(state_dir)
        self.overrides = dict(overrides or {})
        self.client = dict(client or {})
        self.host = host
        self.port = port
        self.log_dir = self.state_dir / "kraft"
        self._state_file = self.state_dir / "broker.json"
        self._log_path = self.state_dir / "broker.log"
        self._properties = self.state_dir / "server.properties"
        self._ports_file = self.state_dir / "ports.json"

    def state(self) -> BrokerState | None:
        """The recorded broker if its process is still alive; clears a stale record."""
        try:
            state = BrokerState(**json.loads(self._state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not _alive(state.pid):
            self._state_file.unlink(missing_ok=True)
            return None
        return state

    def start(self, timeout: float = 60.0) -> BrokerState:
        """Start the node (formatting its log directory the first time) and wait until it
        answers metadata requests. Records from earlier runs on this state dir are kept."""
        running = self.state()
        if running is not None:
            raise BrokerError(
                f"a broker is already running at {running.bootstrap} (pid {running.pid}); "
                f"stop it with 'driftline broker stop' or use another --state-dir"
            )
        java, classpath = java_binary(), kafka_classpath()
        if not port_is_free(self.host, self.port):
            raise BrokerError(
                f"port {self.host}:{self.port} is already in use by another process; "
                f"choose another with --port or stop what is listening there"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        controller_port = self._controller_port()
        self._properties.write_text(
            server_properties(self.host, self.port, controller_port, self.log_dir, self.overrides)
        )
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, classpath)
        env = {**os.environ, "KAFKA_HEAP_OPTS": HEAP}
        command = [java, *HEAP.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                   "-cp", classpath, "kafka.Kafka", str(self._properties)]  # fmt: skip
        with open(self._log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, env=env)  # fmt: skip
        state = BrokerState(
            pid=process.pid,
            host=self.host,
            port=self.port,
            controller_port=controller_port,
            log_dir=str(self.log_dir),
            log_path=str(self._log_path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._wait_ready(process, state, timeout)
        self._state_file.write_text(json.dumps(asdict(state), indent=2))
        logger.info("broker_started bootstrap=%s pid=%s log_dir=%s", state.bootstrap, state.pid, self.log_dir)
        return state

    def _controller_port(self) -> int:
        """The controller's port: the one used before when still free, else a new free one."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            previous = int(json.loads(self._ports_file.read_text())["controller"])
            if previous != self.port and port_is_free(self.host, previous):
                return previous
        port = free_port(self.host)
        while port == self.port:
            port = free_port(self.host)
        self._ports_file.write_text(json.dumps({"controller": port}))
        return port

    def _format(self, java: str, classpath: str) -> None:
        command = [java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
                   "--cluster-id", cluster_id(), "--config", str(self._properties),
                   "--ignore-formatted"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise BrokerError(
                f"formatting the Kafka log directory {self.log_dir} failed (exit {result.returncode}):\n"
                + "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            )
        logger.info("broker_formatted log_dir=%s", self.log_dir)

    def _wait_ready(self, process: subprocess.Popen, state: BrokerState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not answers_metadata(state.bootstrap, timeout=1.0, settings=self.client):
            if process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {process.returncode} before answering; "
                    f"last lines of {self._log_path}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                _kill_group(process.pid)
                raise BrokerError(
                    f"Kafka did not answer metadata requests on {state.bootstrap} within "
                    f"{timeout}s; last lines of {self._log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0, *, force: bool = False) -> BrokerState | None:
        """Stop the recorded broker; ``None`` if none was running.

        SIGTERM is Kafka's controlled shutdown (logs flushed, clean restart); SIGKILL
        follows after ``timeout`` seconds. ``force`` sends SIGKILL at once: what a crash
        looks like, after which the next start recovers the log directory.
        """
        state = self.state()
        if state is None:
            return None
        os.kill(state.pid, signal.SIGKILL if force else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(state.pid):
            if time.monotonic() > deadline:
                os.kill(state.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        _reap(state.pid)
        # a killed JVM's listening sockets close a moment after its pid is gone
        while not port_is_free(state.host, state.port) and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        self._state_file.unlink(missing_ok=True)
        logger.info("broker_stopped bootstrap=%s pid=%s", state.bootstrap, state.pid)
        return state

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status of a broker we started ourselves (not ours: nothing to do)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
