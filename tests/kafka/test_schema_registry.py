"""With a Schema Registry URL, ids come from the registry through confluent-kafka's real client.

Confluent Schema Registry (a JVM service) cannot run here, so the server side is
``driftline.testing.schema_registry.SchemaRegistryDouble``; the client, the framing,
the broker and the decoding are all real.
"""

import pytest

from driftline.avro.codec import AvroDecoder
from driftline.avro.registry import ConfluentSchemaRegistry, FileSchemaRegistry
from driftline.demo import generator_for, write_records
from driftline.ingest.run import ingest_file, open_pipeline_registry
from driftline.kafka.reading import read_topic
from driftline.testing.schema_registry import SchemaRegistryDouble
from tests.conftest import SCHEMAS

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
