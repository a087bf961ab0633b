"""Ingest under 10,000+ hostile JSON Lines lines: no crash, every record once on one side.

One file of seeded mutants (:class:`driftline.testing.mutations.LineMutator`: random
bytes, invalid UTF-8, truncated and padded JSON, MB-sized strings, extreme numbers,
NaN/Infinity, extreme timestamps, wrong types, missing and extra fields, deep nesting,
blank lines, BOMs, control characters, lone surrogates) and some valid lines goes
through ``ingest_file`` on the real broker once per module; the tests then read both
topics back and check the run, the counts, every record's side and reason against an
expectation worked out from the mutation alone, and the dead letters' contents.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from driftline.avro.codec import AvroDecoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.config import load_pipeline
from driftline.demo import generator_for
from driftline.ingest.run import ingest_file
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode, Stage
from driftline.testing.mutations import LINE_KINDS, LineMutator, Mutant, schema_fields
from tests.conftest import DEMO_PIPELINE, SCHEMAS

pytestmark = pytest.mark.kafka

SOURCE = "payments"
LINES = 12_500  # 15% valid: 10,625 hostile lines, of which about 300 blank
VALID_SHARE = 0.15
# A 5,000-digit integer literal makes the JSON Lines reader raise and ends the run: it
# has a test of its own below, outside the big file.
CRASHING_KINDS = ("huge_int_literal",)
KINDS = tuple(k for k in LINE_KINDS if k not in CRASHING_KINDS)
REGISTRY = FileSchemaRegistry(SCHEMAS)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
VALID = "valid"
DEAD = {code.value for code in ReasonCode if code.stage is Stage.INGEST}


def _config(bootstrap: str, state: str):
    config = load_pipeline(DEMO_PIPELINE).with_kafka(
        bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}."
    )
    return config.model_copy(
        update={"state_dir": state, "metrics": config.metrics.model_copy(update={"port": 0})}
    )


def _mutator(config, seed: int) -> LineMutator:
    generator, _ = generator_for(config, SOURCE, seed=seed)
    writer = REGISTRY.get(config.sources[SOURCE].subject)
    return LineMutator(writer.definition, [r.value for r in generator.records(400)], seed=seed)


def _is_blank(line: bytes) -> bool:
    return not line.strip()


@pytest.fixture(scope="module")
def fuzzed(kafka_bootstrap, tmp_path_factory):
    """The module's one ingest run: mutants, file, summary, both topics read back."""
    tmp = tmp_path_factory.mktemp("ingest_fuzz")
    config = _config(kafka_bootstrap, str(tmp / "state"))
    mutants = _mutator(config, seed=2026).generate(LINES, kinds=KINDS, valid_share=VALID_SHARE)
    path = tmp / "hostile.jsonl"
    path.write_bytes(b"\n".join(m.data for m in mutants) + b"\n")
    started = time.monotonic()
    summary = ingest_file(config, SOURCE, path)
    seconds = time.monotonic() - started
    produced = read_topic(kafka_bootstrap, config.topic(SOURCE), timeout=60)
    letters = [
        DeadLetter.from_message(m.value(), m.headers())
        for m in read_topic(kafka_bootstrap, config.dead_letter_topic(SOURCE), timeout=60)
    ]
    return {"config": config, "mutants": mutants, "path": path, "summary": summary, "seconds": seconds,
            "produced": produced, "letters": letters}  # fmt: skip


def _records(fuzzed) -> dict[int, Mutant]:
    """Non-blank lines by 1-based line number: what ingest must count as records."""
    return {n: m for n, m in enumerate(fuzzed["mutants"], start=1) if not _is_blank(m.data)}


def _letters_by_line(fuzzed) -> dict[int, DeadLetter]:
    by_line: dict[int, DeadLetter] = {}
    for letter in fuzzed["letters"]:
        unit, number = letter.input_location.split()
        assert unit == "line" and int(number) not in by_line, f"line {number} dead-lettered twice"
        by_line[int(number)] = letter
    return by_line


def test_the_file_is_big_and_hostile(fuzzed) -> None:
    kinds = Counter(m.kind for m in fuzzed["mutants"])
    assert sum(kinds.values()) - kinds[VALID] >= 10_000 and kinds[VALID] >= 1_000
    assert set(kinds) == set(KINDS)
    assert 1 <= sum(len(m.data) > 1_000_000 for m in fuzzed["mutants"]) <= 6  # a few lines of MBs


def test_ingest_finishes_and_every_count_reconciles(fuzzed) -> None:
    summary, records = fuzzed["summary"], _records(fuzzed)
    assert summary.error is None and summary.delivery_errors == [], summary.as_dict()
    assert summary.reconciles, summary.as_dict()
    assert summary.read == len(records) and summary.skipped == 0
    assert (summary.delivered, summary.undelivered) == (summary.read, 0)
    assert (len(fuzzed["produced"]), len(fuzzed["letters"])) == (summary.valid, summary.dead_lettered)
    assert Counter(letter.reason.value for letter in fuzzed["letters"]) == summary.by_reason
    assert fuzzed["seconds"] < 60, f"ingest took {fuzzed['seconds']:.0f} s"


def test_every_record_lands_exactly_once_on_one_side(fuzzed) -> None:
    records, by_line = _records(fuzzed), _letters_by_line(fuzzed)
    assert set(by_line) <= set(records), "a dead letter points at a blank line or past the file"
    valid_side = [records[n] for n in sorted(set(records) - set(by_line))]
    assert len(valid_side) == len(fuzzed["produced"])
    # the records on the topic are exactly the lines that were not dead-lettered (by transaction id;
    # the few the reference decoder cannot read back are a bug of their own, tested below)
    unreadable = [m for m in valid_side if _utc_overflow(m)]
    expected_ids = Counter(json.loads(m.data)["transaction_id"] for m in valid_side if not _utc_overflow(m))
    decoded = _decoded(fuzzed)
    assert len([d for d in decoded if not d.ok]) == len(unreadable)
    assert Counter(d.value["transaction_id"] for d in decoded if d.ok) == expected_ids
    writer = REGISTRY.get("payments")
    for message, outcome in zip(fuzzed["produced"], decoded, strict=True):
        assert message.value()[1:5] == writer.schema_id.to_bytes(4, "big")
        if outcome.ok:
            assert message.key() == outcome.value["card_id"].encode()


def test_every_record_on_the_topic_decodes_with_the_reader_schema(fuzzed) -> None:
    failed = [d.detail[:120] for d in _decoded(fuzzed) if not d.ok]
    assert failed == [], f"{len(failed)} valid-side records do not decode, e.g. {failed[:3]}"


def _decoded(fuzzed) -> list:
    decoder = AvroDecoder(REGISTRY, reader=REGISTRY.get("payments"))
    return [decoder.decode(message.value()) for message in fuzzed["produced"]]


def test_dead_letters_carry_a_reason_a_message_and_the_original_line(fuzzed) -> None:
    records, path = _records(fuzzed), str(fuzzed["path"])
    for number, letter in _letters_by_line(fuzzed).items():
        line = records[number].data
        assert letter.reason.value in DEAD and letter.stage is Stage.INGEST, letter
        assert letter.message.strip() and (letter.pipeline, letter.source, letter.input_file) == (
            "demo", SOURCE, path,
        )  # fmt: skip
        if letter.original_size is None:
            assert letter.raw == line.rstrip(b"\r")
        else:  # cut to fit one message: a prefix, with the whole line's size
            assert letter.original_size == len(line) and line.startswith(letter.raw) and letter.raw


# -- what each mutation must become -----------------------------------------------------------------

FIELDS = {f.name: f for f in schema_fields(REGISTRY.get("payments").definition)}
DEFAULTS = {f["name"] for f in REGISTRY.get("payments").definition["fields"] if "default" in f}


def _number_outcome(avro: str, nullable: bool, value) -> str:
    """What the Avro contract makes of a JSON number (or NaN / Infinity) in a field of type ``avro``."""
    if avro in INT_RANGE:
        if isinstance(value, float) and not value.is_integer():
            return "TYPE_MISMATCH"
        low, high = INT_RANGE[avro]
        return VALID if low <= int(value) <= high else "OUT_OF_RANGE"
    if avro == "timestamp":
        if isinstance(value, float) and math.isnan(value):
            return "OUT_OF_RANGE"
        try:
            EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            return "OUT_OF_RANGE"
        return VALID
    # double
    if isinstance(value, float) and math.isnan(value):
        return VALID if nullable else "OUT_OF_RANGE"  # a nullable field's NaN is null
    try:
        return VALID if math.isfinite(float(value)) else "OUT_OF_RANGE"
    except OverflowError:  # an integer beyond any double
        return "OUT_OF_RANGE"


def _time_text_outcome(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return "TYPE_MISMATCH"
    try:
        moment.astimezone(UTC) if moment.tzinfo else moment
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        return "OUT_OF_RANGE"
    return VALID


def expected_outcomes(m: Mutant) -> set[str]:
    """Outcomes the contract allows for a mutant (``valid`` or reason codes), from the mutation alone."""
    field = FIELDS.get(m.field) if m.field is not None else None
    if m.kind == VALID:
        return {VALID}
    if m.kind == "random_bytes":
        return DEAD
    if m.kind in ("truncated", "padded", "control_char"):
        return {"NOT_PARSEABLE"}
    if m.kind == "invalid_utf8":  # an encoded surrogate decodes (surrogatepass) and cannot be encoded again
        return {"SCHEMA_INVALID"} if m.value == b"\xed\xa0\x80" else {"NOT_PARSEABLE"}
    if m.kind == "lone_surrogate":
        return {"SCHEMA_INVALID"}
    if m.kind == "huge_string":
        if field.avro != "string":
            return {"TYPE_MISMATCH"}
        return {"TOO_LARGE"} if len(m.value.encode()) > 1_000_000 else {VALID}
    if m.kind in ("extreme_number", "nan_inf", "extreme_timestamp"):
        if isinstance(m.value, str):
            return {_time_text_outcome(m.value)}
        return {_number_outcome(field.avro, field.nullable, m.value)}
    if m.kind == "wrong_type":
        return {"TYPE_MISMATCH"}
    if m.kind == "missing_field":
        return {VALID} if m.field in DEFAULTS else {"MISSING_FIELD"}
    if m.kind == "null_field":
        return {VALID} if field.nullable else {"MISSING_FIELD"}
    if m.kind == "extra_field":
        return {"UNKNOWN_FIELD"}
    if m.kind == "deep_nesting":  # too deep for the parser, or a list / object where a scalar goes
        return {"TYPE_MISMATCH"} if m.value <= 32 else {"NOT_PARSEABLE"} if m.value >= 2_000 else {
            "TYPE_MISMATCH", "NOT_PARSEABLE"}  # fmt: skip
    if m.kind == "empty":
        return {"MISSING_FIELD"} if m.data.replace(b" ", b"") == b"{}" else {"NOT_PARSEABLE"}
    if m.kind == "bom":
        # one leading BOM (UTF-8, or UTF-16 with its text) is read by Python's json; either is fine
        lenient = m.detail in ("UTF-8 BOM first", "UTF-16-LE with its BOM", "UTF-16-BE with its BOM")
        return {VALID, "NOT_PARSEABLE"} if lenient else {VALID} if m.field else {"NOT_PARSEABLE"}
    raise AssertionError(f"no expectation for kind {m.kind!r}")


def _validator_raised(m: Mutant) -> bool:
    """Mutants on which the record validator used to raise instead of refusing the value."""
    field = FIELDS.get(m.field) if m.field is not None else None
    if field is None or m.kind not in ("extreme_number", "nan_inf", "extreme_timestamp"):
        return False
    nan_time = field.avro == "timestamp" and isinstance(m.value, float) and math.isnan(m.value)
    beyond_double = field.avro == "double" and isinstance(m.value, int) and abs(m.value) >= 2**1024
    return nan_time or beyond_double


def _utc_overflow(m: Mutant) -> bool:
    """Timestamps with a UTC offset whose instant is outside years 1-9999 in UTC."""
    return (
        m.kind == "extreme_timestamp"
        and isinstance(m.value, str)
        and (_time_text_outcome(m.value) == "OUT_OF_RANGE")
    )


def _known_bug(m: Mutant) -> bool:
    return _validator_raised(m) or _utc_overflow(m)


def _outcomes(fuzzed) -> dict[int, str]:
    by_line = _letters_by_line(fuzzed)
    return {n: by_line[n].reason.value if n in by_line else VALID for n in _records(fuzzed)}


def test_every_mutant_gets_the_outcome_its_mutation_calls_for(fuzzed) -> None:
    records, outcomes = _records(fuzzed), _outcomes(fuzzed)
    wrong = [
        (n, records[n].kind, records[n].detail[:40], outcomes[n], sorted(expected_outcomes(records[n])))
        for n in records
        if not _known_bug(records[n]) and outcomes[n] not in expected_outcomes(records[n])
    ]
    assert wrong == [], f"{len(wrong)} records with another outcome, e.g. {wrong[:10]}"
    seen = Counter((records[n].kind, outcomes[n]) for n in records)
    assert seen[("valid", VALID)] >= 1_000 and seen[("huge_string", "TOO_LARGE")] >= 1
    assert {outcome for (kind, outcome) in seen if kind == "extreme_timestamp"} >= {VALID, "OUT_OF_RANGE",
                                                                                   "TYPE_MISMATCH"}  # fmt: skip


def test_values_the_validator_chokes_on_are_out_of_range_not_unparseable(fuzzed) -> None:
    records, outcomes = _records(fuzzed), _outcomes(fuzzed)
    chosen = {n: m for n, m in records.items() if _validator_raised(m)}
    assert len(chosen) >= 10
    assert {n: outcomes[n] for n in chosen} == {n: "OUT_OF_RANGE" for n in chosen}


def test_timestamps_outside_years_1_to_9999_in_utc_are_out_of_range(fuzzed) -> None:
    records, outcomes = _records(fuzzed), _outcomes(fuzzed)
    chosen = {n: m for n, m in records.items() if _utc_overflow(m)}
    assert len(chosen) >= 10
    assert {n: outcomes[n] for n in chosen} == {n: "OUT_OF_RANGE" for n in chosen}


def test_an_integer_literal_too_long_to_parse_is_a_dead_letter(kafka_bootstrap, tmp_path) -> None:
    config = _config(kafka_bootstrap, str(tmp_path / "state"))
    mutants = _mutator(config, seed=7).generate(300, kinds=["huge_int_literal"], valid_share=0.9)
    path = tmp_path / "digits.jsonl"
    path.write_bytes(b"\n".join(m.data for m in mutants) + b"\n")
    bad = [n for n, m in enumerate(mutants, start=1) if m.kind == "huge_int_literal"]

    summary = ingest_file(config, SOURCE, path)

    assert summary.error is None, summary.error
    assert (summary.read, summary.valid, summary.by_reason) == (300, 270, {"NOT_PARSEABLE": 30})
    letters = read_topic(kafka_bootstrap, config.dead_letter_topic(SOURCE))
    located = sorted(int(DeadLetter.from_message(m.value(), m.headers()).input_location.split()[1])
                     for m in letters)  # fmt: skip
    assert located == bad
