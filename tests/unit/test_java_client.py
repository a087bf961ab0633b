"""librdkafka settings are mapped to the Java client's names for Spark's connector, or refused by name."""

import pytest

from driftline.errors import ConfigError
from driftline.kafka.java_client import java_consumer_settings


def test_sasl_ssl_settings_are_mapped_to_the_java_names() -> None:
    got = java_consumer_settings(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "svc",
            "sasl.password": 'p"w\\d',
            "ssl.ca.location": "/etc/ca.pem",
            "ssl.endpoint.identification.algorithm": "none",
            "fetch.wait.max.ms": 250,
            "compression.type": "zstd",  # a producer setting: not for the consumer
        }
    )
    assert got == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.truststore.location": "/etc/ca.pem",
        "ssl.truststore.type": "PEM",
        "ssl.endpoint.identification.algorithm": "",
        "fetch.max.wait.ms": "250",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="svc" password="p\\"w\\\\d";',
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"queued.max.messages.kbytes": 1024}, "[kafka.consumer] 'queued.max.messages.kbytes' has no Java Kafka client equivalent"),
        ({"group.id": "g"}, "[kafka.consumer] 'group.id' cannot be set for the Spark job; set nothing: Spark's connector"),
        ({"auto.offset.reset": "latest"}, "set [kafka] starting_offsets"),
        ({"sasl.username": "u"}, "has 'sasl.username' but not 'sasl.password'; SASL needs both"),
        ({"sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": "p"},
         "sasl.mechanism 'GSSAPI' with sasl.username/sasl.password cannot be mapped to a JAAS login module; valid: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ],
)  # fmt: skip
def test_what_cannot_be_mapped_is_refused_by_name(settings, message) -> None:
    with pytest.raises(ConfigError) as error:
        java_consumer_settings(settings)
    assert message in str(error.value)


def test_the_secret_never_appears_in_a_refusal() -> None:
    with pytest.raises(ConfigError) as error:
        java_consumer_settings({"sasl.password": "hunter2-secret", "bogus.key": 1})
    assert "hunter2-secret" not in str(error.value)
