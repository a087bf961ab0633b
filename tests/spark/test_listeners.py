"""Everything driftline starts listens on the loopback interface only.

The embedded broker (both listeners), the Spark driver (RPC, block manager, Py4J) and
the metrics exporter are started by the session fixtures and this test; every
listening TCP socket owned by this process or one of its descendants must be bound
to 127.0.0.1 or ::1. Read from ``/proc`` (Linux), no tool needed.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftline.metrics.exporter import serve

pytestmark = [pytest.mark.spark, pytest.mark.kafka]
LISTEN = "0A"


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listening() -> dict[str, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket on the machine."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != LISTEN:
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(words)
            address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 is 127.0.0.1
            sockets[inode] = (str(address), int(port_hex, 16))
    return sockets


def test_every_listening_socket_is_on_loopback(spark, kafka_bootstrap) -> None:
    exporter = serve(CollectorRegistry(), port=0)
    try:
        spark.range(10).count()  # the driver's services are up
        listening = _listening()
        ours = {
            inode: (pid, listening[inode])
            for pid in _descendants(os.getpid())
            for inode in _socket_inodes(pid)
            if inode in listening
        }
    finally:
        exporter.close()
    ports = {address_port[1] for _, address_port in ours.values()}
    assert int(kafka_bootstrap.rsplit(":", 1)[1]) in ports and exporter.port in ports  # the check sees them
    assert len(ours) >= 5, ours  # broker x2, exporter, Py4J, Spark driver RPC (at least)
    exposed = {
        pid_address
        for pid_address in ours.values()
        if not ipaddress.ip_address(pid_address[1][0]).is_loopback
    }
    assert not exposed, f"listening beyond loopback (pid, (address, port)): {sorted(exposed)}"
