"""A minimal in-process Confluent Schema Registry for tests where the real one cannot run.

Confluent Schema Registry is a JVM service; this answers the two REST calls that
confluent-kafka's ``SchemaRegistryClient`` makes for driftline, with the documented
response shapes, so the real client is exercised end to end:

``POST /subjects/{subject}/versions``  register; the same schema gets the same id
``GET  /schemas/ids/{id}``             look up; 404 with error_code 40403 if unknown

Ids are assigned sequentially from 1 across subjects, as Schema Registry does, so they
differ from the file registry's content-hash ids (tests rely on that to see which
registry framed a record).

``basic_auth=("user", "password")`` makes it answer 401 (error_code 401) to a request
without those HTTP basic credentials, as Schema Registry does with basic
authentication on; setting :attr:`SchemaRegistryDouble.failing` to a status (e.g. 500)
makes every request fail with it until it is set back to ``None``, and
:attr:`SchemaRegistryDouble.failing_lookups` only the ``GET /schemas/ids/{id}`` calls.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REGISTER = re.compile(r"^/subjects/([^/]+)/versions$")
_BY_ID = re.compile(r"^/schemas/ids/(\d+)$")


class SchemaRegistryDouble:
    """Run with ``with SchemaRegistryDouble() as registry: registry.url``."""

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self.basic_auth = basic_auth
        self.failing: int | None = None
        self.failing_lookups: int | None = None
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.ids: dict[str, int] = {}  # canonical schema text -> id
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SchemaRegistryDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def register(self, subject: str, schema: str) -> int:
        canonical = json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        with self._lock:
            schema_id = self.ids.setdefault(canonical, len(self.ids) + 1)
            self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
        return schema_id

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _refused(self) -> bool:
                """Answer 401 or the forced failure; True when the request got its answer."""
                registry.authorizations.append(self.headers.get("Authorization"))
                failing = registry.failing or (registry.failing_lookups if self.command == "GET" else None)
                if failing is not None:
                    self._reply(failing, {"error_code": failing, "message": "forced failure"})
                    return True
                if registry.basic_auth is not None:
                    expected = "Basic " + base64.b64encode(":".join(registry.basic_auth).encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self._reply(401, {"error_code": 401, "message": "Unauthorized"})
                        return True
                return False

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0]
                registry.requests.append(("POST", path))
                if self._refused():
                    return None
                match = _REGISTER.match(path)
                if match is None:
                    return self._reply(404, {"error_code": 404, "message": f"no route {path}"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body.get("schemaType", "AVRO") != "AVRO":
                    return self._reply(422, {"error_code": 42201, "message": "only AVRO here"})
                return self._reply(200, {"id": registry.register(match.group(1), body["schema"])})

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                registry.requests.append(("GET", path))
                if self._refused():
                    return None
                match = _BY_ID.match(path)
                schema = registry.schemas.get(int(match.group(1))) if match else None
                if schema is None:
                    return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                return self._reply(200, {"schema": schema})

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
