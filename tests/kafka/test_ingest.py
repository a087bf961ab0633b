"""Ingest against the real broker: what went in is exactly what came out, on one side or the other."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from driftline.avro.codec import AvroDecoder, AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.avro.validation import RecordValidator
from driftline.demo import EXPECTED_REASON, Corruption, generator_for, write_records
from driftline.ingest.run import ingest_file
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from tests.conftest import SCHEMAS

pytestmark = pytest.mark.kafka
REGISTRY = FileSchemaRegistry(SCHEMAS)
FIRST_DATA_LINE = {"jsonl": 1, "csv": 2, "parquet": 1}  # header row offsets the CSV lines


def _canonical(record: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in record.items()))


@pytest.mark.parametrize(
    ("source", "fmt"), [("payments", "jsonl"), ("sensors", "csv"), ("clickstream", "parquet")]
)
def test_every_record_lands_once_on_the_right_side(demo_config, tmp_path, source, fmt) -> None:
    kinds = ("missing_field",) if fmt == "parquet" else None
    corruption = Corruption(0.08, kinds) if kinds else Corruption(0.08)
    generator, names = generator_for(demo_config, source, seed=21, corruption=corruption, late_rate=0.01)
    generated = generator.records(3000)
    path = write_records(tmp_path / f"{source}.{fmt}", generated, names)
    started = datetime.now(UTC)

    summary = ingest_file(demo_config, source, path)

    truth = Counter(r.kind for r in generated)
    bad_kinds = {k for k in truth if k not in ("valid", "late")}
    assert len(bad_kinds) == (1 if fmt == "parquet" else 4)
    assert summary.read == 3000 == summary.valid + summary.dead_lettered
    assert summary.valid == truth["valid"] + truth["late"]
    assert summary.by_reason == Counter({EXPECTED_REASON[k]: truth[k] for k in bad_kinds})
    assert (summary.delivered, summary.undelivered) == (3000, 0) and summary.reconciles

    bootstrap = demo_config.kafka.bootstrap_servers
    produced = read_topic(bootstrap, demo_config.topic(source))
    letters = read_topic(bootstrap, demo_config.dead_letter_topic(source))
    assert (len(produced), len(letters)) == (summary.valid, summary.dead_lettered)

    # valid side: decodes to exactly the generated records, keyed by entity id
    writer = REGISTRY.get(demo_config.sources[source].subject)
    validator, decoder, encoder = (
        RecordValidator(writer),
        AvroDecoder(REGISTRY, reader=writer),
        AvroEncoder(writer),
    )
    # expected: the generated records through a local encode/decode (Avro float is 32-bit)
    expected = sorted(
        _canonical(decoder.decode(encoder.encode(validator.validate(r.value, raw=b"").value)).value)
        for r in generated
        if r.kind in ("valid", "late")
    )
    decoded = [decoder.decode(m.value()) for m in produced]
    assert all(d.ok for d in decoded)
    assert sorted(_canonical(d.value) for d in decoded) == expected
    entity = demo_config.sources[source].entity_id
    partitions_per_entity = defaultdict(set)
    for message, outcome in zip(produced, decoded, strict=True):
        assert message.key().decode() == outcome.value[entity]
        partitions_per_entity[message.key()].add(message.partition())
    assert all(len(p) == 1 for p in partitions_per_entity.values())

    # dead-letter side: right reason, original bytes, full context
    lines = path.read_bytes().splitlines() if fmt != "parquet" else None
    for message in letters:
        letter = DeadLetter.from_message(message.value(), message.headers())
        unit, number = letter.input_location.split()
        record = generated[int(number) - FIRST_DATA_LINE[fmt]]
        assert letter.reason.value == EXPECTED_REASON[record.kind], letter
        assert letter.stage.value == "ingest"
        assert (letter.pipeline, letter.source, letter.input_file) == ("demo", source, str(path))
        assert started - timedelta(seconds=1) <= letter.time <= datetime.now(UTC)
        if lines is not None:
            assert unit == "line" and letter.raw == lines[int(number) - 1]
        else:
            assert unit == "row" and b'"' + generator.model.missing_target.encode() + b'": null' in letter.raw
        assert letter.message


def test_summary_json_is_one_line_with_the_documented_keys(demo_config, tmp_path) -> None:
    generator, names = generator_for(
        demo_config, "sensors", seed=1, corruption=Corruption(0.5, ("wrong_type",))
    )
    path = write_records(tmp_path / "s.jsonl", generator.records(200), names)
    summary = ingest_file(demo_config, "sensors", path)
    line = summary.to_json()
    assert "\n" not in line
    import json

    parsed = json.loads(line)
    assert list(parsed)[:5] == ["source", "read", "valid", "dead_lettered", "by_reason"]
    assert parsed["read"] == 200 == parsed["valid"] + parsed["dead_lettered"]
    assert parsed["by_reason"] == {"TYPE_MISMATCH": parsed["dead_lettered"]} and parsed["dead_lettered"] > 60


def test_fields_the_schema_lacks_are_counted_per_field(demo_config, tmp_path) -> None:
    """Schema drift at the door: a producer started sending fields the writer schema does
    not have. Those records are dead letters (UNKNOWN_FIELD), and the summary counts every
    unknown field, not only the first one a record is rejected for."""
    import json

    generator, names = generator_for(demo_config, "sensors", seed=4)
    lines = [json.loads(line) for line in write_records(tmp_path / "s.jsonl", generator.records(60), names)
             .read_text().splitlines()]  # fmt: skip
    for i, line in enumerate(lines):
        if i % 3 == 0:
            line["firmware"] = "2.1"
        if i % 4 == 0:
            line["battery_pct"] = 80
    path = tmp_path / "drifted.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = ingest_file(demo_config, "sensors", path)
    assert summary.unknown_fields == {"firmware": 20, "battery_pct": 15}
    with_unknown = sum(1 for i in range(60) if i % 3 == 0 or i % 4 == 0)
    assert summary.by_reason["UNKNOWN_FIELD"] == with_unknown and summary.reconciles
    assert json.loads(summary.to_json())["unknown_fields"] == {"battery_pct": 15, "firmware": 20}
