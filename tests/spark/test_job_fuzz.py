"""The quality job under 10,000+ hostile Kafka values: no crash, every one accounted for.

Seeded mutants of valid payments frames (:class:`driftline.testing.mutations.FrameMutator`:
random bytes, truncated and padded frames, wrong magic bytes, unknown and foreign schema
ids, bit flips, near-1 MB strings, invalid UTF-8, NaN / Infinity, extreme numbers and
timestamps, event times far ahead of the Kafka timestamp, null where the schema has no
null, empty values and tombstones), 30% valid frames among them (schema v2 and v1), go
to the payments topic and through ``run`` once per module, in one micro-batch. The tests
then check the summary, the dead-letter topic record by record against the Kafka
coordinates of what was produced, each record's outcome against an expectation worked
out independently of the job (framing by hand; the body by fastavro, only when it is a
canonical Avro encoding; then the event-time, finiteness and expectation-suite rules in
plain Python), and that the statistics stayed finite.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
import uuid
from collections import Counter

import fastavro
import pytest

from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.demo import generator_for
from driftline.expectations import load_expectation_suite
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode, Stage
from driftline.spark.job import run
from driftline.testing.mutations import LONG_MAX, FrameMutator, Mutant, Writer
from tests.conftest import SCHEMAS, pipeline_copy
from tests.spark.helpers import produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

SOURCE = "payments"
FRAMES = 15_400  # 30% valid: 10,780 mutants, 10,146 of them not a valid older version
VALID_SHARE = 0.3
BATCH = 20_000  # everything in one micro-batch: no record can be late
REGISTRY = FileSchemaRegistry(SCHEMAS)
READER = REGISTRY.get(SOURCE)
VALID = "valid"
AMBIGUOUS = None

# the job's documented limits (driftline.spark.event_time, [windows] max_future)
SPARK_MILLIS = LONG_MAX // 1000  # event times beyond +-this many ms do not fit Spark's microseconds
EARLIEST_MS, LATEST_MS = -62_135_510_400_000, 253_402_128_000_000  # 0001-01-02, 9999-12-30 UTC
MAX_FUTURE_MS = 3_600_000
JAVA_LINE_ENDS = re.compile("[\n\r\u0085\u2028\u2029]")  # where Java's `$` and Python's differ


def _writer(schema) -> Writer:
    return Writer(schema.schema_id, schema.definition)


@pytest.fixture(scope="module")
def fuzzed(spark, kafka_bootstrap, tmp_path_factory):
    """The module's one run: mutants produced with unique keys, the job until idle, both topics read."""
    tmp = tmp_path_factory.mktemp("job_fuzz")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    config = load_pipeline(pipeline_copy(tmp, bootstrap=kafka_bootstrap, prefix=prefix))
    generator, _ = generator_for(config, SOURCE, seed=77)
    sensors, _ = generator_for(config, "sensors", seed=78)
    mutator = FrameMutator(
        _writer(READER), [r.value for r in generator.records(600)], seed=2026,
        known_ids=[REGISTRY.get(s, v).schema_id for s in REGISTRY.subjects() for v in REGISTRY.versions(s)],
        older=[_writer(REGISTRY.get(SOURCE, 1))],
        foreign=(_writer(REGISTRY.get("sensors")), [r.value for r in sensors.records(200)]),
        now_millis=int(time.time() * 1000),
    )  # fmt: skip
    mutants = mutator.generate(FRAMES, valid_share=VALID_SHARE)
    topic = config.topic(SOURCE)
    keys = [b"m%d" % i for i in range(FRAMES)]
    produce_frames(kafka_bootstrap, topic, [m.data for m in mutants], keys, partitions=4)
    messages = read_topic(kafka_bootstrap, topic, timeout=60)
    origin = {(m.partition(), m.offset()): int(m.key()[1:]) for m in messages}
    kafka_ms = {(m.partition(), m.offset()): m.timestamp()[1] for m in messages}
    started = time.monotonic()
    summary = run(spark, config, sources=[SOURCE], max_records_per_batch=BATCH).as_dict()["sources"][SOURCE]
    seconds = time.monotonic() - started
    letters = [
        DeadLetter.from_message(m.value(), m.headers())
        for m in read_topic(kafka_bootstrap, config.dead_letter_topic(SOURCE), timeout=120)
    ]
    return {"config": config, "topic": topic, "mutants": mutants, "messages": messages, "origin": origin,
            "kafka_ms": kafka_ms, "summary": summary, "seconds": seconds, "letters": letters}  # fmt: skip


def _letters_by_origin(fuzzed) -> dict[tuple[int, int], DeadLetter]:
    by_origin: dict[tuple[int, int], DeadLetter] = {}
    for letter in fuzzed["letters"]:
        assert letter.topic == fuzzed["topic"], letter.origin
        coordinates = (letter.partition, letter.offset)
        assert coordinates not in by_origin, f"{letter.origin} dead-lettered twice"
        by_origin[coordinates] = letter
    return by_origin


def _outcomes(fuzzed) -> dict[tuple[int, int], str]:
    """Every produced record's outcome in the job: ``valid`` or its dead letter's reason."""
    by_origin = _letters_by_origin(fuzzed)
    return {at: by_origin[at].reason.value if at in by_origin else VALID for at in fuzzed["origin"]}


def test_the_input_is_big_and_every_value_was_produced_as_generated(fuzzed) -> None:
    mutants, messages = fuzzed["mutants"], fuzzed["messages"]
    kinds = Counter(m.kind for m in mutants)
    assert len(mutants) - kinds["valid"] - kinds["valid_older"] >= 10_000
    assert len(kinds) == 18 and min(kinds.values()) >= 500
    assert len(messages) == FRAMES == len(set(fuzzed["origin"].values()))
    assert all(m.value() == mutants[fuzzed["origin"][(m.partition(), m.offset())]].data for m in messages)
    assert len({m.partition() for m in messages}) == 4


def test_the_job_completes_and_its_counts_reconcile(fuzzed) -> None:
    summary = fuzzed["summary"]
    assert summary["reconciles"] is True and summary["read"] == FRAMES, summary
    assert summary["valid"] + summary["dead_lettered"] + summary["late"] == summary["read"]
    assert (summary["late"], summary["batches"]) == (0, 1)
    assert sum(summary["by_reason"].values()) == summary["dead_lettered"]
    assert fuzzed["seconds"] < 240, f"the job took {fuzzed['seconds']:.0f} s"


def test_one_dead_letter_per_rejected_record_with_its_origin_and_bytes(fuzzed) -> None:
    summary, by_origin = fuzzed["summary"], _letters_by_origin(fuzzed)
    assert set(by_origin) <= set(fuzzed["origin"]), "a dead letter names an offset that was never produced"
    assert len(by_origin) == summary["dead_lettered"] + summary["late"]
    assert Counter(letter.reason.value for letter in by_origin.values()) == Counter(summary["by_reason"])
    assert len(fuzzed["origin"]) - len(by_origin) == summary["valid"]
    stages = {Stage.DECODE, Stage.RULE, Stage.LATE}
    for at, letter in by_origin.items():
        original = fuzzed["mutants"][fuzzed["origin"][at]].data or b""
        assert isinstance(letter.reason, ReasonCode) and letter.reason.stage in stages, letter.origin
        assert letter.message.strip() and (letter.pipeline, letter.source) == ("demo", SOURCE)
        if letter.original_size is None:
            assert letter.raw == original, letter.origin
        else:  # cut to fit one Kafka message; the dead_letters table keeps it whole
            assert letter.original_size == len(original) and original.startswith(letter.raw)
        framed = len(original) >= 5 and original[0] == 0
        assert letter.schema_id == (int.from_bytes(original[1:5], "big") if framed else None), letter.origin


# -- what each record must become, worked out without the job --------------------------------------

PLAIN = {}  # schema id -> fastavro schema with timestamps as plain longs


def _plain(schema):
    """fastavro's parsed ``schema`` with its timestamp-millis fields as the longs on the wire."""
    if schema.schema_id not in PLAIN:
        definition = json.loads(json.dumps(schema.definition))
        for spec in definition["fields"]:
            if isinstance(spec["type"], dict) and spec["type"].get("logicalType") == "timestamp-millis":
                spec["type"] = "long"
        PLAIN[schema.schema_id] = fastavro.parse_schema(definition, _force=True)
    return PLAIN[schema.schema_id]


def _canonical_record(writer, body: bytes) -> dict | None:
    """The record if ``body`` is exactly the Avro encoding fastavro writes for it, else None
    (then a Java decoder may read it otherwise: negative lengths, overlong varints, invalid UTF-8)."""
    buffer = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buffer, _plain(writer), None)
    except Exception:  # noqa: BLE001 - whatever fastavro refuses, the job is free to decide
        return None
    again = io.BytesIO()
    fastavro.schemaless_writer(again, _plain(writer), record)
    if buffer.tell() != len(body) or again.getvalue() != body:
        return None
    defaults = {f["name"]: f.get("default") for f in READER.definition["fields"]}
    return {**defaults, **record}


def _violates(rule, row) -> bool | None:
    """Great Expectations' row semantics in plain Python (None: Java and Python regexes may differ)."""
    value, short = row.get(rule.column), rule.short_type
    if short in ("not_null", "null"):
        return (value is None) == (short == "not_null")
    if value is None:
        return False
    if short == "between":
        if isinstance(value, float) and math.isnan(value):
            return True
        low, high = rule.min_value, rule.max_value
        below = low is not None and (value <= low if rule.strict_min else value < low)
        above = high is not None and (value >= high if rule.strict_max else value > high)
        return below or above
    if short == "length_between":
        return not rule.min_value <= len(value) <= rule.max_value
    if short in ("in_set", "not_in_set"):
        return (value in rule.value_set) == (short == "not_in_set")
    if JAVA_LINE_ENDS.search(value):
        return None
    return (re.search(rule.regex, value) is None) == (short == "regex")


def expected_outcome(value: bytes | None, kafka_ms: int, rules, numeric) -> str | None:
    """``valid``, a reason code, or None when only the job can tell."""
    if value is None or len(value) < 5 or value[0] != 0:
        return "NOT_FRAMED"
    writer = REGISTRY.by_id(int.from_bytes(value[1:5], "big"))
    if writer is None:
        return "UNKNOWN_SCHEMA"
    if writer.subject != READER.subject:  # another record type: the reader cannot resolve it
        return "DECODE_FAILED"
    row = _canonical_record(writer, value[5:])
    if row is None:
        return AMBIGUOUS
    millis = row["event_time"]
    if abs(millis) > SPARK_MILLIS:
        return "DECODE_FAILED"
    if not EARLIEST_MS <= millis <= LATEST_MS or millis > kafka_ms + MAX_FUTURE_MS:
        return "EVENT_TIME_OUT_OF_RANGE"
    if any(isinstance(row[f], float) and math.isinf(row[f]) for f in numeric):
        return "NOT_FINITE"
    for rule in rules:
        violated = _violates(rule, row)
        if violated is None:
            return AMBIGUOUS
        if violated:
            return "RULE_FAILED"
    return VALID


FIXED = {  # kinds whose outcome follows from the mutation alone
    "wrong_magic": "NOT_FRAMED", "empty": "NOT_FRAMED", "tombstone": "NOT_FRAMED",
    "unknown_schema_id": "UNKNOWN_SCHEMA", "foreign_schema": "DECODE_FAILED",
}  # fmt: skip
UNDECIDED = {"bit_flip", "invalid_utf8", "padded"}  # the last two: DECODE_FAILED, each has its own test


def _expectations(fuzzed) -> dict[tuple[int, int], str | None]:
    config = fuzzed["config"]
    rules = [r for r in load_expectation_suite(config.path(config.source(SOURCE).expectations),
                                               with_great_expectations=False) if r.row_level]  # fmt: skip
    numeric = [f for f, c in config.source(SOURCE).features.items() if c.kind == "numeric"]
    out = {}
    for at, index in fuzzed["origin"].items():
        m: Mutant = fuzzed["mutants"][index]
        if m.kind in FIXED:
            out[at] = FIXED[m.kind]
        elif m.kind == "truncated":
            out[at] = "NOT_FRAMED" if len(m.data) < 5 else "DECODE_FAILED"
        elif m.kind in UNDECIDED:
            out[at] = AMBIGUOUS
        else:
            out[at] = expected_outcome(m.data, fuzzed["kafka_ms"][at], rules, numeric)
    return out


def test_every_record_gets_the_outcome_worked_out_for_it(fuzzed) -> None:
    expected, outcomes = _expectations(fuzzed), _outcomes(fuzzed)
    kind = {at: fuzzed["mutants"][i].kind for at, i in fuzzed["origin"].items()}
    wrong = [(at, kind[at], fuzzed["mutants"][fuzzed["origin"][at]].detail[:50], outcomes[at], expected[at])
             for at in expected if expected[at] is not AMBIGUOUS and outcomes[at] != expected[at]]  # fmt: skip
    assert wrong == [], f"{len(wrong)} records with another outcome, e.g. {wrong[:10]}"
    decided = Counter(kind[at] for at in expected if expected[at] is not AMBIGUOUS)
    assert sum(decided.values()) >= 10_000, decided
    reached = {expected[at] for at in expected}
    assert reached >= {VALID, "NOT_FRAMED", "UNKNOWN_SCHEMA", "DECODE_FAILED", "EVENT_TIME_OUT_OF_RANGE",
                       "NOT_FINITE", "RULE_FAILED"}  # fmt: skip


def test_valid_frames_of_either_schema_version_are_valid(fuzzed) -> None:
    outcomes = _outcomes(fuzzed)
    for kind in ("valid", "valid_older"):
        seen = Counter(
            outcomes[at] for at, i in fuzzed["origin"].items() if fuzzed["mutants"][i].kind == kind
        )
        assert set(seen) == {VALID} and seen[VALID] >= 500, (kind, seen)


def test_undecided_mutants_are_valid_or_decode_stage_dead_letters(fuzzed) -> None:
    outcomes = _outcomes(fuzzed)
    allowed = {VALID, "DECODE_FAILED", "EVENT_TIME_OUT_OF_RANGE", "NOT_FINITE", "RULE_FAILED"}
    for kind in UNDECIDED:
        seen = Counter(
            outcomes[at] for at, i in fuzzed["origin"].items() if fuzzed["mutants"][i].kind == kind
        )
        assert set(seen) <= allowed and sum(seen.values()) >= 500, (kind, seen)
    flips = Counter(
        outcomes[at] for at, i in fuzzed["origin"].items() if fuzzed["mutants"][i].kind == "bit_flip"
    )
    assert flips["DECODE_FAILED"] >= 1 and flips[VALID] + flips["RULE_FAILED"] >= 1, flips


def test_frames_with_trailing_bytes_are_decode_failures(fuzzed) -> None:
    outcomes = _outcomes(fuzzed)
    padded = Counter(
        outcomes[at] for at, i in fuzzed["origin"].items() if fuzzed["mutants"][i].kind == "padded"
    )
    assert padded == Counter({"DECODE_FAILED": sum(padded.values())}), padded


def test_statistics_stay_finite_and_count_the_valid_records(fuzzed) -> None:
    config, summary = fuzzed["config"], fuzzed["summary"]
    stats = read_delta(config.path(config.warehouse_dir) / "feature_stats")
    numeric = stats[stats["kind"] == "numeric"]
    assert numeric[["mean", "stddev", "min", "max"]].dropna().map(math.isfinite).all().all()
    assert numeric.groupby("feature")["rows"].sum().to_dict() == {
        f: summary["valid"] for f in ("amount", "installments", "risk_score")
    }
    dead = read_delta(config.path(config.warehouse_dir) / "dead_letters", columns=["_offset"])
    assert len(dead) == summary["dead_lettered"] + summary["late"]


def test_strings_that_are_not_utf8_are_decode_failures(fuzzed) -> None:
    outcomes = _outcomes(fuzzed)
    found = Counter(
        outcomes[at] for at, i in fuzzed["origin"].items() if fuzzed["mutants"][i].kind == "invalid_utf8"
    )
    assert found == Counter({"DECODE_FAILED": sum(found.values())}), found


def test_a_categorical_feature_that_is_not_utf8_does_not_stop_the_job(spark, kafka_bootstrap, topic_prefix,
                                                                       tmp_path) -> None:  # fmt: skip
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    # no exporter: a failed run would keep it up for [metrics] linger_on_failure
    config = config.model_copy(update={"metrics": config.metrics.model_copy(update={"enabled": False})})
    writer = REGISTRY.get("clickstream")
    generator, _ = generator_for(config, "clickstream", seed=5)
    mutator = FrameMutator(_writer(writer), [r.value for r in generator.records(200)], seed=5)
    mutants = mutator.generate(400, kinds=["invalid_utf8"], valid_share=0.5)
    assert sum(m.field == "referrer" for m in mutants) >= 20
    produce_frames(kafka_bootstrap, config.topic("clickstream"), [m.data for m in mutants], [None] * 400,
                   partitions=1)  # fmt: skip

    summary = run(spark, config, sources=["clickstream"], max_records_per_batch=1000).as_dict()["sources"]
    assert summary["clickstream"]["read"] == 400 and summary["clickstream"]["reconciles"] is True
    letters = read_topic(kafka_bootstrap, config.dead_letter_topic("clickstream"))
    unpacked = [DeadLetter.from_message(m.value(), m.headers()) for m in letters]
    reasons = {letter.offset: letter.reason.value for letter in unpacked}  # the original record's offset
    bad = [offset for offset, m in enumerate(mutants) if m.kind == "invalid_utf8"]
    assert {offset: reasons.get(offset) for offset in bad} == dict.fromkeys(bad, "DECODE_FAILED")
    named = {letter.offset: letter.message for letter in unpacked if letter.offset in bad}
    assert all(f"field {mutants[o].field!r} is not valid UTF-8" == text for o, text in named.items()), named
