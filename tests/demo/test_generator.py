"""Signal generators: deterministic, and the injected truth is really there."""

import numpy as np
import pytest

from driftline.avro.codec import AvroDecoder, AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.avro.validation import RecordValidator
from driftline.demo import (
    EXPECTED_REASON,
    FRAME_CORRUPTIONS,
    Corruption,
    Drift,
    SignalGenerator,
    corrupt_frame,
    source_model,
)
from tests.conftest import SCHEMAS

REGISTRY = FileSchemaRegistry(SCHEMAS)


def values(records, field, start=0, stop=None):
    return [r.value[field] for r in records[start:stop] if r.kind == "valid"]


def test_same_seed_same_records_different_seed_different_records() -> None:
    a = SignalGenerator("payments", seed=3, corruption=Corruption(0.1)).records(500)
    b = SignalGenerator("payments", seed=3, corruption=Corruption(0.1)).records(500)
    c = SignalGenerator("payments", seed=4, corruption=Corruption(0.1)).records(500)
    assert a == b
    assert values(a, "amount") != values(c, "amount")


def test_records_by_index_do_not_depend_on_how_they_were_requested() -> None:
    gen = SignalGenerator("sensors", seed=1)
    whole = gen.records(200)
    assert gen.records(100, first_index=100) != whole[100:]  # chunks are seeded by first index
    assert gen.records(100, first_index=100) == gen.records(100, first_index=100)


@pytest.mark.parametrize("source", ["payments", "sensors", "clickstream"])
def test_clean_records_validate_against_the_latest_schema(source) -> None:
    validator = RecordValidator(REGISTRY.get(source))
    records = SignalGenerator(source, seed=11).records(300)
    outcomes = [validator.validate(r.value, raw=b"") for r in records]
    assert all(o.ok for o in outcomes), next(o for o in outcomes if not o.ok)


def test_mean_shift_moves_the_mean_by_the_asked_standard_deviations_from_start_only() -> None:
    spec = source_model("sensors").field("temperature_c")
    gen = SignalGenerator("sensors", seed=2, drifts=(Drift("mean_shift", "temperature_c", 5000, 1.5),))
    records = gen.records(10000)
    before, after = (
        np.mean(values(records, "temperature_c", 0, 5000)),
        np.mean(values(records, "temperature_c", 5000)),
    )
    assert abs(before - spec.mean) < 0.2
    assert abs((after - before) / spec.std - 1.5) < 0.1


def test_variance_change_scales_the_spread() -> None:
    gen = SignalGenerator("sensors", seed=5, drifts=(Drift("variance_change", "temperature_c", 4000, 3.0),))
    records = gen.records(8000)
    ratio = np.std(values(records, "temperature_c", 4000)) / np.std(values(records, "temperature_c", 0, 4000))
    assert 2.8 < ratio < 3.2


def test_new_category_and_null_rate_appear_only_after_start() -> None:
    drifts = (Drift("new_category", "country", 3000, 0.2, "BR"), Drift("null_rate", "risk_score", 3000, 0.5))
    records = SignalGenerator("payments", seed=6, drifts=drifts).records(6000)
    countries_before, countries_after = values(records, "country", 0, 3000), values(records, "country", 3000)
    assert "BR" not in countries_before
    assert 0.17 < countries_after.count("BR") / len(countries_after) < 0.23
    nulls_before = np.mean([v is None for v in values(records, "risk_score", 0, 3000)])
    nulls_after = np.mean([v is None for v in values(records, "risk_score", 3000)])
    assert 0.03 < nulls_before < 0.07 and 0.46 < nulls_after < 0.54


def test_corruption_rate_and_kinds() -> None:
    records = SignalGenerator("clickstream", seed=8, corruption=Corruption(0.1)).records(20000)
    kinds = [r.kind for r in records]
    assert 0.09 < sum(k != "valid" for k in kinds) / len(kinds) < 0.11
    assert {k for k in kinds if k != "valid"} == {
        "not_parseable",
        "missing_field",
        "wrong_type",
        "out_of_range",
    }
    broken = next(r for r in records if r.kind == "not_parseable")
    assert broken.value is None and broken.text.startswith('{"session_id"')


def test_late_records_are_behind_the_stream_by_late_by() -> None:
    gen = SignalGenerator("sensors", seed=9, late_rate=0.05)
    records = gen.records(4000)
    late = [r for r in records if r.kind == "late"]
    assert 150 < len(late) < 250
    for record in late[:20]:
        on_time = gen.start + record.index * gen.interval
        lag = on_time - record.value["event_time"]
        assert gen.late_by - gen.interval <= lag <= gen.late_by


def test_unknown_drift_feature_lists_the_fields() -> None:
    with pytest.raises(KeyError, match="source 'sensors' has no field 'humidity'; fields: sensor_id, site"):
        SignalGenerator("sensors", seed=0, drifts=(Drift("mean_shift", "humidity", 0),))


@pytest.mark.parametrize("kind", FRAME_CORRUPTIONS)
def test_frame_corruptions_decode_to_their_reason(kind) -> None:
    writer = REGISTRY.get("payments")
    rng = np.random.default_rng(0)
    decoder = AvroDecoder(REGISTRY, reader=writer)
    for record in SignalGenerator("payments", seed=1).records(50):
        outcome = decoder.decode(corrupt_frame(kind, AvroEncoder(writer).encode(record.value), rng))
        assert outcome.reason.value == EXPECTED_REASON[kind]
