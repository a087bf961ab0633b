"""``driftline broker start|stop|status`` runs the real tansu binary and refuses clearly."""

import json
import os
import socket
import subprocess
import sys

import pytest

from driftline.kafka.broker import free_port

pytestmark = pytest.mark.kafka


def cli(*args, env=None, timeout=90):
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli", "broker", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_start_status_stop_and_refusals(tmp_path) -> None:
    port = free_port()
    state = str(tmp_path / "broker")
    started = cli("start", "--state-dir", state, "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        status = cli("status", "--state-dir", state)
        assert status.returncode == 0
        info = json.loads(status.stdout)
        assert (info["bootstrap"], info["answering"]) == (f"127.0.0.1:{port}", True)
        assert (tmp_path / "broker" / "broker.log").exists()

        again = cli("start", "--state-dir", state, "--port", str(port))
        assert again.returncode == 4
        assert f"a broker is already running at 127.0.0.1:{port} (pid {info['pid']})" in again.stderr

        taken = cli("start", "--state-dir", str(tmp_path / "other"), "--port", str(port))
        assert taken.returncode == 4
        assert f"port 127.0.0.1:{port} is already in use" in taken.stderr
    finally:
        stopped = cli("stop", "--state-dir", state)
    assert stopped.stdout.strip() == f"stopped broker at 127.0.0.1:{port} (pid {info['pid']})"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    gone = cli("status", "--state-dir", state)
    assert (gone.returncode, gone.stderr.strip()) == (4, "not running")
    assert cli("stop", "--state-dir", state).stdout.strip() == "no broker running"


def test_missing_binary_is_refused_with_its_cause(tmp_path) -> None:
    run = cli("start", "--state-dir", str(tmp_path), "--port", str(free_port()),
              env={"CALF_TANSU_BIN": str(tmp_path / "no-such-tansu")})  # fmt: skip
    assert run.returncode == 4
    assert "tansu broker binary not found" in run.stderr and "no-such-tansu" in run.stderr
