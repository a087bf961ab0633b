"""With a Schema Registry URL, ids come from the registry through confluent-kafka's real client.

Confluent Schema Registry (a JVM service) cannot run here, so the server side is
``driftline.testing.schema_registry.SchemaRegistryDouble``; the client, the framing,
the broker and the decoding are all real.
"""

import pytest

from driftline.avro.codec import AvroDecoder
from driftline.avro.registry import ConfluentSchemaRegistry, FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.demo import generator_for, write_records
from driftline.ingest.run import ingest_file, open_pipeline_registry
from driftline.kafka.reading import read_topic
from driftline.testing.schema_registry import SchemaRegistryDouble
from tests.conftest import SCHEMAS, pipeline_copy

pytestmark = pytest.mark.kafka


def test_ingest_frames_with_registry_ids_and_decodes_by_looking_them_up(demo_config, tmp_path) -> None:
    with SchemaRegistryDouble() as server:
        server.register("unrelated", '{"type": "string"}')  # so ids here start at 2
        config = demo_config.with_kafka(schema_registry_url=server.url)
        registry = open_pipeline_registry(config)
        assert isinstance(registry, ConfluentSchemaRegistry)

        generator, names = generator_for(config, "payments", seed=5)
        records = generator.records(300)
        summary = ingest_file(config, "payments", write_records(tmp_path / "p.jsonl", records, names))
        assert (summary.valid, summary.undelivered) == (300, 0)
        assert server.subjects == {"unrelated": [1], "payments": [2]}

        messages = read_topic(config.kafka.bootstrap_servers, config.topic("payments"))
        assert {m.value()[:5] for m in messages} == {b"\x00\x00\x00\x00\x02"}
        file_id = FileSchemaRegistry(SCHEMAS).get("payments").schema_id
        assert file_id != 2

        # a fresh client knows nothing locally: decoding must ask the server for id 2
        reader = FileSchemaRegistry(SCHEMAS).get("payments")
        fresh = ConfluentSchemaRegistry(server.url, FileSchemaRegistry(SCHEMAS))
        decoded = [AvroDecoder(fresh, reader=reader).decode(m.value()) for m in messages]
        assert ("GET", "/schemas/ids/2") in server.requests
        assert sorted(d.value["transaction_id"] for d in decoded) == sorted(
            r.value["transaction_id"] for r in records
        )
        unknown = AvroDecoder(fresh, reader=reader).decode(b"\x00\x00\x00\x00\x63" + messages[0].value()[5:])
        assert unknown.reason.value == "UNKNOWN_SCHEMA"


def test_registry_credentials_reach_the_server_and_only_not_found_is_unknown(demo_config, tmp_path) -> None:
    from driftline.errors import SchemaError

    secret = "s3ntinel-registry-pass"
    with SchemaRegistryDouble(basic_auth=("svc", secret)) as server:
        pipeline = pipeline_copy(
            tmp_path, bootstrap=demo_config.kafka.bootstrap_servers, prefix=demo_config.kafka.topic_prefix,
            replace={
                '# schema_registry_url = "http://localhost:8081"': f'schema_registry_url = "{server.url}"',
                "[kafka.producer]": f'[kafka.schema_registry]\n"basic.auth.user.info" = "svc:{secret}"\n\n[kafka.producer]',
            },
        )  # fmt: skip
        config = load_pipeline(pipeline)
        assert secret not in repr(config) and secret not in str(config.kafka.model_dump())
        generator, names = generator_for(config, "payments", seed=6)
        summary = ingest_file(
            config, "payments", write_records(tmp_path / "p.jsonl", generator.records(50), names)
        )
        assert summary.valid == 50 and summary.error is None
        import base64

        assert set(server.authorizations) == {"Basic " + base64.b64encode(f"svc:{secret}".encode()).decode()}

        # the job's registry (built the same way from the same config) looks ids up with them
        looked_up = open_pipeline_registry(config)
        schema_id = read_topic(config.kafka.bootstrap_servers, config.topic("payments"))[0].value()[1:5]
        assert looked_up.by_id(int.from_bytes(schema_id, "big")) is not None
        assert looked_up.by_id(999) is None  # 404: unknown, its records are UNKNOWN_SCHEMA

        wrong = ConfluentSchemaRegistry(
            server.url, FileSchemaRegistry(SCHEMAS), {"basic.auth.user.info": "svc:nope"}
        )
        with pytest.raises(
            SchemaError, match=r"could not look up schema id 1: HTTP 401 Unauthorized.*credentials"
        ):
            wrong.by_id(1)
        server.failing = 503
        fresh = ConfluentSchemaRegistry(
            server.url, FileSchemaRegistry(SCHEMAS), {"basic.auth.user.info": f"svc:{secret}"}
        )
        with pytest.raises(SchemaError, match=r"HTTP 503") as failure:
            fresh.by_id(1)
        assert secret not in str(failure.value)
        server.failing = None
        assert fresh.by_id(1) is not None  # not cached as unknown: the outage is over

    with pytest.raises(SchemaError, match=r"unreachable looking up schema id 1") as gone:
        ConfluentSchemaRegistry(
            server.url.replace("http://", f"http://svc:{secret}@"), FileSchemaRegistry(SCHEMAS)
        ).by_id(1)
    assert secret not in str(gone.value)
