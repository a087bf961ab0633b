"""Serve a registry over HTTP for Prometheus to scrape (``GET /metrics``).

prometheus-client's own server (a daemon thread in the job's driver process), bound
to ``[metrics] address`` / ``port``; port 0 picks a free port (tests), the chosen one
is on :attr:`Exporter.port`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server

from driftline.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class Exporter:
    address: str
    port: int
    _server: object
    _thread: object

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, *, address: str = "127.0.0.1", port: int = 9464) -> Exporter:
    """Start serving ``registry``; raises :class:`ConfigError` naming the setting if it cannot bind."""
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as error:
        raise ConfigError(
            f"[metrics] cannot serve on {address}:{port}: {error.strerror or error}; "
            "set [metrics] port to a free port (0 picks one) or enabled = false"
        ) from None
    exporter = Exporter(address, server.server_address[1], server, thread)
    logger.info("metrics_exporter url=%s", exporter.url)
    return exporter


__all__ = ["Exporter", "serve"]
