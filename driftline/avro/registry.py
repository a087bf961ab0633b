"""Schema registries: where writer schemas and their ids come from.

Two implementations share one small interface (:class:`SchemaRegistry`):

* :class:`FileSchemaRegistry` reads ``schemas/<subject>/v<N>.avsc``. A schema's id is
  derived from its content (first 31 bits of the SHA-256 of its normalised JSON), so
  ids are stable across machines and runs without any state to keep: adding a
  version never renumbers the others.
* :class:`ConfluentSchemaRegistry` talks to a Confluent-compatible Schema Registry
  through confluent-kafka's ``SchemaRegistryClient``; local ``.avsc`` files are
  registered under their subject (as Confluent serializers do with
  ``auto.register.schemas``) and ids come from the server.

Both frame records the same way (see :mod:`driftline.avro.framing`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from driftline.errors import SchemaError

logger = logging.getLogger(__name__)

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")
Version = int | Literal["latest"]


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of one subject, with its registry id.

    ``definition`` is the schema as written (JSON object); ``parsed`` is fastavro's
    parsed form used for encoding and decoding.
    """

    subject: str
    version: int
    schema_id: int
    definition: dict[str, Any] = field(repr=False, compare=False)
    parsed: Any = field(repr=False, compare=False)

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.definition.get("fields", [])]

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.definition.get("fields", []) if f["name"] == name), None)


class SchemaRegistry(Protocol):
    """What the codec, the ingest and the pipeline loader need from a registry."""

    def subjects(self) -> list[str]: ...

    def versions(self, subject: str) -> list[int]: ...

    def get(self, subject: str, version: Version = "latest") -> RegisteredSchema: ...

    def by_id(self, schema_id: int) -> RegisteredSchema | None: ...


def parse_schema(definition: dict[str, Any], *, origin: str) -> Any:
    """Parse an Avro schema with fastavro, turning its errors into :class:`SchemaError`."""
    try:
        return fastavro.parse_schema(definition, _write_hint=True, _force=True)
    except (SchemaParseException, UnknownType, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"{origin}: not a valid Avro schema: {exc}") from exc


def content_id(definition: dict[str, Any]) -> int:
    """Stable schema id: the first 31 bits of SHA-256 over the normalised JSON.

    >>> content_id({"type": "string"}) == content_id({"type": "string"})
    True
    >>> 0 < content_id({"type": "string"}) < 2**31
    True
    """
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


def load_definition(path: Path) -> dict[str, Any]:
    try:
        definition = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read Avro schema JSON: {exc}") from exc
    if not isinstance(definition, dict):
        raise SchemaError(f"{path}: expected a JSON object (an Avro record schema)")
    return definition


class FileSchemaRegistry:
    """Read-only registry over a directory laid out as ``<subject>/v<N>.avsc``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise SchemaError(f"schema directory {self.directory} does not exist")
        self._by_subject: dict[str, dict[int, RegisteredSchema]] = {}
        self._by_id: dict[int, RegisteredSchema] = {}
        for path in sorted(self.directory.glob("*/*.avsc")):
            self._add(path)
        if not self._by_subject:
            raise SchemaError(f"no schemas under {self.directory} (expected <subject>/v<N>.avsc)")

    def _add(self, path: Path) -> None:
        match = _VERSION_FILE.match(path.name)
        if not match:
            raise SchemaError(f"{path}: schema files must be named v<N>.avsc (e.g. v1.avsc)")
        subject, version = path.parent.name, int(match.group(1))
        definition = load_definition(path)
        registered = RegisteredSchema(
            subject=subject,
            version=version,
            schema_id=content_id(definition),
            definition=definition,
            parsed=parse_schema(definition, origin=str(path)),
        )
        clash = self._by_id.get(registered.schema_id)
        if clash is not None and clash.definition != definition:
            raise SchemaError(
                f"{path}: schema id {registered.schema_id} collides with "
                f"{clash.subject} v{clash.version}; change the schema's doc to re-key it"
            )
        self._by_subject.setdefault(subject, {})[version] = registered
        self._by_id.setdefault(registered.schema_id, registered)

    def subjects(self) -> list[str]:
        return sorted(self._by_subject)

    def versions(self, subject: str) -> list[int]:
        return sorted(self._subject(subject))

    def get(self, subject: str, version: Version = "latest") -> RegisteredSchema:
        versions = self._subject(subject)
        if version == "latest":
            return versions[max(versions)]
        if version not in versions:
            raise SchemaError(
                f"subject {subject!r} has no version {version}; "
                f"valid versions: {', '.join(map(str, sorted(versions)))}"
            )
        return versions[version]

    def by_id(self, schema_id: int) -> RegisteredSchema | None:
        return self._by_id.get(schema_id)

    def _subject(self, subject: str) -> dict[int, RegisteredSchema]:
        if subject not in self._by_subject:
            raise SchemaError(
                f"no schema subject {subject!r} under {self.directory}; "
                f"valid subjects: {', '.join(self.subjects())}"
            )
        return self._by_subject[subject]


class ConfluentSchemaRegistry:
    """Registry backed by a Confluent-compatible Schema Registry server.

    The local directory still defines the schemas (the source of truth lives in the
    repository); each local version is registered under its subject on first use and
    the server's id is used for framing. Decoding looks ids up on the server, so
    records written by other producers decode too.

    Only the server's "schema not found" (HTTP 404, error code 40403) makes an id unknown (its records become
    ``UNKNOWN_SCHEMA`` dead letters). Any other answer (401/403: credentials; 5xx, after
    the client's own retries) or no answer raises :class:`SchemaError`, so a registry
    outage or a wrong password stops the job with that message instead of
    dead-lettering good records. Messages show the URL without credentials.
    """

    def __init__(self, url: str, local: FileSchemaRegistry, conf: dict[str, Any] | None = None):
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url, **(conf or {})})
        self._where = _without_userinfo(url)
        self._local = local
        self._registered: dict[tuple[str, int], RegisteredSchema] = {}
        self._by_id: dict[int, RegisteredSchema | None] = {}

    def subjects(self) -> list[str]:
        return self._local.subjects()

    def versions(self, subject: str) -> list[int]:
        return self._local.versions(subject)

    def get(self, subject: str, version: Version = "latest") -> RegisteredSchema:
        local = self._local.get(subject, version)
        key = (local.subject, local.version)
        if key not in self._registered:
            from confluent_kafka.schema_registry import Schema
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                schema_id = self._client.register_schema(
                    subject, Schema(json.dumps(local.definition), "AVRO")
                )
            except SchemaRegistryError as exc:
                raise SchemaError(
                    f"schema registry {self._where} refused {subject} v{version}: HTTP "
                    f"{exc.http_status_code} {exc.error_message} (error code {exc.error_code}); {_CHECK}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - unreachable, TLS
                raise SchemaError(
                    f"schema registry {self._where} is unreachable registering {subject} v{version}: "
                    f"{type(exc).__name__}: {exc}; {_CHECK}"
                ) from None
            registered = RegisteredSchema(subject, local.version, schema_id, local.definition, local.parsed)
            self._registered[key] = registered
            self._by_id[schema_id] = registered
            logger.info("schema_registered subject=%s version=%s id=%s", subject, version, schema_id)
        return self._registered[key]

    def by_id(self, schema_id: int) -> RegisteredSchema | None:
        if schema_id not in self._by_id:
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                schema = self._client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.error_code != 40403:  # only "schema not found" makes records UNKNOWN_SCHEMA
                    raise SchemaError(
                        f"schema registry {self._where} could not look up schema id {schema_id}: HTTP "
                        f"{exc.http_status_code} {exc.error_message} (error code {exc.error_code}); "
                        f"{_CHECK}"
                    ) from None
                self._by_id[schema_id] = None
            except Exception as exc:  # noqa: BLE001 - the HTTP client's own errors: unreachable, TLS
                raise SchemaError(
                    f"schema registry {self._where} is unreachable looking up schema id {schema_id}: "
                    f"{type(exc).__name__}: {exc}; {_CHECK}"
                ) from None
            else:
                definition = json.loads(schema.schema_str)
                self._by_id[schema_id] = RegisteredSchema(
                    subject="",
                    version=0,
                    schema_id=schema_id,
                    definition=definition,
                    parsed=parse_schema(definition, origin=f"registry id {schema_id}"),
                )
        return self._by_id[schema_id]


_CHECK = "check [kafka] schema_registry_url and the credentials in [kafka.schema_registry]"


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (never in a message)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_registry(schemas_dir: Path, url: str | None = None, conf: dict[str, Any] | None = None):
    """The registry a pipeline uses: file-backed, or Confluent when ``url`` is set."""
    local = FileSchemaRegistry(schemas_dir)
    return ConfluentSchemaRegistry(url, local, conf) if url else local
