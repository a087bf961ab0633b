"""librdkafka settings to the Java Kafka client's, for Spark's Kafka connector.

A pipeline's ``[kafka.client]`` and ``[kafka.consumer]`` tables use librdkafka's names
(driftline's own Python clients are confluent-kafka). Spark's connector is the Java
client, whose names differ in places; this module maps them once, before the query
starts, and refuses what it cannot map, naming the key.

=================================  ====================================================
librdkafka                         Java client
=================================  ====================================================
``sasl.username`` + ``sasl.password``  ``sasl.jaas.config`` (PLAIN or SCRAM login module,
                                   by ``sasl.mechanism``)
``sasl.mechanisms``                ``sasl.mechanism``
``ssl.ca.location``                ``ssl.truststore.location`` + ``ssl.truststore.type=PEM``
``fetch.wait.max.ms``              ``fetch.max.wait.ms``
``ssl.endpoint.identification.algorithm=none``  the same key, empty
the names in :data:`SAME_NAME`     unchanged
producer-only settings             left out (they configure producers)
=================================  ====================================================

The result holds secrets (the JAAS line): pass it to the connector, never log it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.errors import ConfigError
from driftline.kafka.clients import PRODUCER_ONLY

SAME_NAME = frozenset(
    {
        "security.protocol", "sasl.mechanism", "client.id", "client.rack",
        "request.timeout.ms", "session.timeout.ms", "heartbeat.interval.ms",
        "fetch.min.bytes", "fetch.max.bytes", "max.partition.fetch.bytes",
        "metadata.max.age.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms",
        "retry.backoff.ms", "socket.connection.setup.timeout.ms",
        "ssl.endpoint.identification.algorithm", "ssl.key.password",
        "ssl.keystore.location", "ssl.keystore.password", "sasl.kerberos.service.name",
    }
)  # fmt: skip
RENAMED = {"sasl.mechanisms": "sasl.mechanism", "fetch.wait.max.ms": "fetch.max.wait.ms"}
#: What the connector or driftline sets itself, and where a user sets it instead.
MANAGED = {
    "bootstrap.servers": "[kafka] bootstrap_servers",
    "group.id": "nothing: Spark's connector tracks offsets in its checkpoint, not in a group",
    "auto.offset.reset": "[kafka] starting_offsets",
    "enable.auto.commit": "nothing: offsets live in the checkpoint",
    "isolation.level": "nothing: the job always reads read_committed",
}
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def java_consumer_settings(settings: Mapping[str, Any], *, table: str = "[kafka.consumer]") -> dict[str, str]:
    """Map librdkafka consumer settings to the Java client's names (values as strings).

    Examples
    --------
    >>> java_consumer_settings({"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
    ...     "sasl.username": "u", "sasl.password": "p", "linger.ms": 5})["sasl.jaas.config"]
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";'
    """
    out: dict[str, str] = {}
    for key, value in settings.items():
        if key in ("sasl.username", "sasl.password") or key in PRODUCER_ONLY:
            continue
        if key in MANAGED:
            raise ConfigError(f"{table} {key!r} cannot be set for the Spark job; set {MANAGED[key]}")
        if key == "ssl.ca.location":
            out["ssl.truststore.location"] = str(value)
            out["ssl.truststore.type"] = "PEM"
        elif key == "ssl.endpoint.identification.algorithm":
            out[key] = "" if str(value).lower() == "none" else str(value)
        elif key in RENAMED or key in SAME_NAME:
            out[RENAMED.get(key, key)] = _text(value)
        else:
            raise ConfigError(
                f"{table} {key!r} has no Java Kafka client equivalent that driftline maps for Spark's "
                f"Kafka connector; mapped: {', '.join(sorted(SAME_NAME | set(RENAMED) | _SASL_KEYS))} "
                f"(producer-only settings are ignored for the job)"
            )
    if "sasl.username" in settings or "sasl.password" in settings:
        out["sasl.jaas.config"] = _jaas(settings, table)
    return out


_SASL_KEYS = {"sasl.username", "sasl.password", "ssl.ca.location"}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _jaas(settings: Mapping[str, Any], table: str) -> str:
    missing = [k for k in ("sasl.username", "sasl.password") if k not in settings]
    if missing:
        present = "sasl.username" if missing == ["sasl.password"] else "sasl.password"
        raise ConfigError(f"{table} has {present!r} but not {missing[0]!r}; SASL needs both")
    mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", "PLAIN"))).upper()
    module = _LOGIN_MODULES.get(mechanism)
    if module is None:
        raise ConfigError(
            f"{table} sasl.mechanism {mechanism!r} with sasl.username/sasl.password cannot be mapped to a "
            f"JAAS login module; valid: {', '.join(_LOGIN_MODULES)}"
        )
    user, password = (str(settings[k]).replace("\\", "\\\\").replace('"', '\\"')
                      for k in ("sasl.username", "sasl.password"))  # fmt: skip
    return f'{module} required username="{user}" password="{password}";'
