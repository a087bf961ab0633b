"""Row rules evaluated by Spark agree with an independent Python reading of GE's semantics.

Frames are built from pyarrow tables with explicit types (never through pandas, which
turns a None in a string column into "nan" under pandas 3); Spark reads them as a local
relation, without Python workers, which keeps each check to a fraction of a second.
"""

import math
import re

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from driftline.avro.registry import FileSchemaRegistry
from driftline.demo import SignalGenerator
from driftline.demo.run import demo_drifts
from driftline.errors import ConfigError
from driftline.expectations import load_expectation_suite
from driftline.quality.rules import parse_suite
from driftline.spark.rules import MAX_SHOWN_CHARS, check_regexes, failure_detail, first_failed_rule, violation
from driftline.spark.schema import spark_type
from tests.conftest import REPO, SCHEMAS

pytestmark = pytest.mark.spark

TYPES = {
    "not_null": "expect_column_values_to_not_be_null",
    "null": "expect_column_values_to_be_null",
    "between": "expect_column_values_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "not_in_set": "expect_column_values_to_not_be_in_set",
    "regex": "expect_column_values_to_match_regex",
    "not_regex": "expect_column_values_to_not_match_regex",
    "length_between": "expect_column_value_lengths_to_be_between",
}
ARROW = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("ms", tz="UTC"),
}
HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def rule_for(short: str, column: str = "v", **kwargs):
    (rule,) = parse_suite(
        {"name": "t", "expectations": [{"type": TYPES[short], "kwargs": {"column": column, **kwargs}}]},
        origin="t.json",
    )
    return rule


def expected_violation(short: str, value, **p) -> bool:
    """GE's row semantics written out directly, without driftline's code."""
    if short == "not_null":
        return value is None
    if short == "null":
        return value is not None
    if value is None:
        return False  # every other row-level type leaves nulls out of its domain
    if short in ("between", "length_between"):
        x = len(value) if short == "length_between" else value
        if math.isnan(x):
            return True
        low, high = p.get("min_value"), p.get("max_value")
        too_low = low is not None and (x <= low if p.get("strict_min") else x < low)
        too_high = high is not None and (x >= high if p.get("strict_max") else x > high)
        return too_low or too_high
    if short == "in_set":
        return value not in p["value_set"]
    if short == "not_in_set":
        return value in p["value_set"]
    found = re.search(p["regex"], value, re.ASCII) is not None  # Java: \d, \w ASCII-only
    return not found if short == "regex" else found


def arrow_frame(spark, columns: dict[str, tuple[str, list]]):
    """A DataFrame with the given ``{name: (Spark SQL type, values)}`` columns."""
    return spark.createDataFrame(
        pa.table({name: pa.array(values, ARROW[sql_type]) for name, (sql_type, values) in columns.items()})
    )


def spark_mask(spark, rule, sql_type: str, values: list) -> list[bool]:
    frame = arrow_frame(spark, {"id": ("INT", list(range(len(values)))), "v": (sql_type, values)})
    rows = sorted(frame.select("id", violation(rule).alias("failed")).collect())
    assert [row.id for row in rows] == list(range(len(values)))
    assert all(row.failed is not None for row in rows)  # never null
    return [row.failed for row in rows]


def check_agrees(spark, short: str, sql_type: str, values: list, **kwargs) -> list[bool]:
    got = spark_mask(spark, rule_for(short, **kwargs), sql_type, values)
    want = [expected_violation(short, value, **kwargs) for value in values]
    assert got == want, list(zip(values, got, want, strict=True))
    return got


NUMBERS = [None, math.nan, -math.inf, -1.0, -0.0, 0.0, 1e-9, 0.5, 1.0, 1.0000001, math.inf]


@pytest.mark.parametrize(
    "bounds",
    [
        {"min_value": 0, "max_value": 1},
        {"min_value": 0, "max_value": 1, "strict_min": True},
        {"min_value": 0, "max_value": 1, "strict_max": True},
        {"min_value": 0, "max_value": 1, "strict_min": True, "strict_max": True},
        {"min_value": 0},
        {"min_value": 0, "strict_min": True},
        {"max_value": 1},
        {"max_value": 1, "strict_max": True},
        {"min_value": 0.5, "max_value": 0.5},
    ],
)
def test_between_on_doubles_matches_python_at_the_boundaries(spark, bounds) -> None:
    got = check_agrees(spark, "between", "DOUBLE", NUMBERS, **bounds)
    assert got[0] is False and got[1] is True  # null passes, NaN fails


def test_between_on_integers_with_integer_bounds(spark) -> None:
    got = check_agrees(spark, "between", "BIGINT", [None, -1, 0, 1, 36, 37, 2**40], min_value=1, max_value=36)
    assert got == [False, True, True, False, False, True, True]


STRINGS = [None, "", " ", "EUR", "eur", "EUR ", "USD", "GBP", "ÉUR"]


@pytest.mark.parametrize("short", ["in_set", "not_in_set"])
@pytest.mark.parametrize("value_set", [["EUR", "USD", "GBP"], ["", "EUR"]])
def test_set_rules_on_strings_are_exact_and_let_nulls_pass(spark, short, value_set) -> None:
    got = check_agrees(spark, short, "STRING", STRINGS, value_set=value_set)
    assert got[0] is False


def test_set_rules_on_integers_and_booleans(spark) -> None:
    integers = check_agrees(spark, "in_set", "INT", [None, 0, 1, 2, 3], value_set=[1, 2])
    booleans = check_agrees(spark, "not_in_set", "BOOLEAN", [None, True, False], value_set=[True])
    assert integers == [False, True, False, False, True] and booleans == [False, True, False]


REGEX_VALUES = [None, "", "card-1", "card-", "xcard-1", "card-12a", "CARD-1", "card-1\n", "card-٣", " \t"]


@pytest.mark.parametrize("short", ["regex", "not_regex"])
@pytest.mark.parametrize("regex", ["^card-[0-9]+$", "[0-9]", "^$", "^\\s*$", "^card-\\d+$", "(?i)^card"])
def test_regex_rules_search_like_re_search_and_let_nulls_pass(spark, short, regex) -> None:
    got = check_agrees(spark, short, "STRING", REGEX_VALUES, regex=regex)
    assert got[0] is False


def test_unanchored_regex_matches_anywhere_and_java_digits_are_ascii(spark) -> None:
    values = ["xcard-1y", "card-٣"]
    assert spark_mask(spark, rule_for("regex", regex="card-[0-9]"), "STRING", values) == [False, True]
    assert spark_mask(spark, rule_for("regex", regex="^card-\\d$"), "STRING", values) == [True, True]


@pytest.mark.parametrize(
    "bounds",
    [
        {"min_value": 1, "max_value": 3},
        {"min_value": 1, "max_value": 3, "strict_min": True, "strict_max": True},
        {"min_value": 0, "max_value": 0},
        {"max_value": 2},
        {"min_value": 4},
    ],
)
def test_length_between_counts_characters(spark, bounds) -> None:
    values = [None, "", "a", "ab", "abc", "abcd", "ünï", "日本語x"]
    got = check_agrees(spark, "length_between", "STRING", values, **bounds)
    assert got[0] is False


@pytest.mark.parametrize("short", ["not_null", "null"])
def test_null_rules_see_nulls_but_not_empty_strings_or_nan(spark, short) -> None:
    strings = check_agrees(spark, short, "STRING", [None, "", "x", "nan"])
    doubles = check_agrees(spark, short, "DOUBLE", [None, math.nan, 0.0])
    assert strings[0] is (short == "not_null") and doubles[1] is (short == "null")


BOUND = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))


@HYPOTHESIS
@given(
    values=st.lists(st.one_of(st.none(), st.floats(width=64)), min_size=1, max_size=25),
    low=BOUND,
    high=BOUND,
    strict_min=st.booleans(),
    strict_max=st.booleans(),
    seed_values=st.booleans(),
)
def test_between_agrees_with_python_on_random_rows(
    spark, values, low, high, strict_min, strict_max, seed_values
):
    if low is None and high is None:
        low = 0.0
    if low is not None and high is not None and low > high:
        low, high = high, low
    if seed_values:  # put the bounds themselves in the rows, where strictness matters
        values = [*values, *(b for b in (low, high) if b is not None)]
    bounds = {"min_value": low, "max_value": high, "strict_min": strict_min, "strict_max": strict_max}
    check_agrees(spark, "between", "DOUBLE", values, **{k: v for k, v in bounds.items() if v is not None})


TEXT = st.text(alphabet="aAbé \x00", max_size=3)


@HYPOTHESIS
@given(
    values=st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=25),
    value_set=st.lists(TEXT, min_size=1, max_size=5),
    short=st.sampled_from(["in_set", "not_in_set"]),
)
def test_set_rules_agree_with_python_on_random_rows(spark, values, value_set, short) -> None:
    check_agrees(spark, short, "STRING", values + value_set[:1], value_set=value_set)


SUITE = {
    "name": "payments",
    "expectations": [
        {"type": TYPES["between"], "kwargs": {"column": "amount", "min_value": 0.0, "max_value": 100000.0}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 1e9}},
        {"type": TYPES["in_set"], "kwargs": {"column": "currency", "value_set": ["EUR", "USD", "GBP"]}},
        {"type": TYPES["not_null"], "kwargs": {"column": "amount"}},
        {"type": TYPES["regex"], "kwargs": {"column": "card_id", "regex": "^card-[0-9]+$"}},
    ],
}


def test_first_failed_rule_follows_suite_order_and_details_say_why(spark) -> None:
    rules = parse_suite(SUITE, origin="payments.json")
    rows = [
        (10.0, "EUR", "card-1"),
        (-5.0, "JPY", "x"),
        (5.0, "JPY", "x"),
        (None, "EUR", "card-2"),
        (5.0, "EUR", "tok_1"),
        (5.0, "Y" * 100, "card-3"),
        (math.nan, "EUR", "card-4"),
    ]
    amount, currency, card_id = (list(column) for column in zip(*rows, strict=True))
    frame = arrow_frame(
        spark,
        {
            "id": ("INT", list(range(len(rows)))),
            "amount": ("DOUBLE", amount),
            "currency": ("STRING", currency),
            "card_id": ("STRING", card_id),
        },
    )
    got = sorted(
        frame.select(
            "id", first_failed_rule(rules).alias("rule"), failure_detail(rules).alias("detail")
        ).collect()
    )
    assert [(r.rule, r.detail) for r in got] == [
        (None, None),
        ("amount:between", "amount:between: amount=-5.0 is not between 0 and 100000"),
        ("currency:in_set", 'currency:in_set: currency="JPY" is not in {"EUR", "USD", "GBP"}'),
        ("amount:not_null", "amount:not_null: amount is null"),
        ("card_id:regex", 'card_id:regex: card_id="tok_1" does not match regex ^card-[0-9]+$'),
        (
            "currency:in_set",
            f'currency:in_set: currency="{"Y" * MAX_SHOWN_CHARS}..." is not in {{"EUR", "USD", "GBP"}}',
        ),
        ("amount:between", "amount:between: amount=NaN is not between 0 and 100000"),
    ]


@pytest.mark.parametrize(
    ("short", "kwargs", "sql_type", "value", "detail"),
    [
        ("null", {}, "INT", 7, "v:null: v=7 is not null"),
        ("between", {"min_value": 0, "strict_min": True}, "DOUBLE", 0.0, "v:between: v=0.0 is not > 0"),
        ("between", {"max_value": 1.5}, "BIGINT", 2, "v:between: v=2 is not <= 1.5"),
        ("between", {"min_value": 0, "max_value": 1, "strict_max": True}, "DOUBLE", 1.0,
         "v:between: v=1.0 is not between 0 and 1 (exclusive)"),
        ("not_in_set", {"value_set": ["XX", "ZZ"]}, "STRING", "XX", 'v:not_in_set: v="XX" is in the forbidden set {"XX", "ZZ"}'),
        ("not_regex", {"regex": "^\\s*$"}, "STRING", "", 'v:not_regex: v="" matches the forbidden regex ^\\s*$'),
        ("length_between", {"min_value": 1, "max_value": 64}, "STRING", "", 'v:length_between: v="" has length 0, not between 1 and 64'),
        ("in_set", {"value_set": [1, 2]}, "INT", 3, "v:in_set: v=3 is not in {1, 2}"),
    ],
)  # fmt: skip
def test_failure_detail_per_type(spark, short, kwargs, sql_type, value, detail) -> None:
    rule = rule_for(short, **kwargs)
    frame = arrow_frame(spark, {"v": (sql_type, [value])})
    assert frame.select(failure_detail([rule])).first()[0] == detail


def test_suite_level_rules_never_route_rows(spark) -> None:
    rules = parse_suite(SUITE, origin="payments.json")
    with pytest.raises(ValueError, match="'amount:mean_between' .* is suite-level"):
        violation(rules[1])
    frame = arrow_frame(spark, {"amount": ("DOUBLE", [1.0])})
    only_suite_level = [rules[1]]
    assert frame.select(first_failed_rule(only_suite_level), failure_detail(only_suite_level)).first() == (
        None,
        None,
    )


def test_check_regexes_compiles_with_java(spark) -> None:
    def regex_rules(regex: str):
        return parse_suite(
            {
                "name": "t",
                "expectations": [{"type": TYPES["regex"], "kwargs": {"column": "c", "regex": regex}}],
            },
            origin="t",
        )

    check_regexes(
        spark, regex_rules("^(?<id>card)-\\p{Digit}+$"), origin="t.json"
    )  # Java-only syntax is fine
    with pytest.raises(
        ConfigError,
        match=r"t.json: expectations\[0\] \(expect_column_values_to_match_regex\): regex '\(a' is not a valid Java regex",
    ):
        check_regexes(spark, regex_rules("(a"), origin="t.json")
    with pytest.raises(ConfigError, match="is not a valid Java regex"):  # Python's named-group syntax
        check_regexes(spark, regex_rules("(?P<id>card)"), origin="t.json")


# --- the demo suites against the demo's generated data ------------------------------------


def source_frame(spark, source: str, values: list[dict]):
    """Records of ``source`` typed by its latest (reader) schema, the way the job sees them."""
    fields = FileSchemaRegistry(SCHEMAS).get(source, "latest").definition["fields"]
    columns = {f["name"]: (spark_type(f["name"], f["type"]), [v[f["name"]] for v in values]) for f in fields}
    columns["id"] = ("INT", list(range(len(values))))
    return arrow_frame(spark, columns)


def suite_for(source: str):
    rules = load_expectation_suite(REPO / "pipelines" / "expectations" / f"{source}.json")
    assert sum(r.row_level for r in rules) >= 6
    return rules


@pytest.mark.parametrize("source", ["payments", "sensors", "clickstream"])
def test_demo_suites_accept_clean_and_drifted_records(spark, source) -> None:
    rules = suite_for(source)
    clean = [r.value for r in SignalGenerator(source, seed=11).records(2000)]
    drifted_gen = SignalGenerator(source, seed=12, drifts=demo_drifts(2000)[source])
    drifted = [r.value for r in drifted_gen.records(2000)]
    frame = source_frame(spark, source, clean + drifted)
    failed = frame.select(failure_detail(rules).alias("detail")).where(F.col("detail").isNotNull())
    assert failed.limit(5).collect() == []
    assert frame.count() == 4000


VIOLATIONS = {
    "payments": [
        ("amount", -5.0, "amount:between"),
        ("amount", 250000.0, "amount:between"),
        ("currency", "JPY", "currency:in_set"),
        ("card_id", "tok_123", "card_id:regex"),
        ("country", "XX", "country:not_in_set"),
        ("country", "deu", "country:regex"),
        ("merchant_category", "Grocery Stores", "merchant_category:regex"),
        ("installments", 0, "installments:between"),
        ("risk_score", 1.5, "risk_score:between"),
        ("transaction_id", "", "transaction_id:length_between"),
        ("transaction_id", "t" * 65, "transaction_id:length_between"),
    ],
    "sensors": [
        ("sensor_id", "s-1", "sensor_id:regex"),
        ("site", "Plant A", "site:regex"),
        ("temperature_c", 250.0, "temperature_c:between"),
        ("temperature_c", -41.0, "temperature_c:between"),
        ("vibration_mm_s", 150.0, "vibration_mm_s:between"),
        ("pressure_kpa", -1.0, "pressure_kpa:between"),
        ("rpm", 12000, "rpm:between"),
        ("status", "BROKEN", "status:in_set"),
    ],
    "clickstream": [
        ("session_id", "abc", "session_id:regex"),
        ("user_id", "anonymous", "user_id:regex"),
        ("page", "admin", "page:in_set"),
        ("device", "watch", "device:in_set"),
        ("referrer", "  ", "referrer:not_regex"),
        ("dwell_ms", -1, "dwell_ms:between"),
        ("dwell_ms", 3600001, "dwell_ms:between"),
        ("scroll_depth", 1.25, "scroll_depth:between"),
        ("clicks", 5000, "clicks:between"),
    ],
}


@pytest.mark.parametrize("source", sorted(VIOLATIONS))
def test_demo_suites_reject_hand_made_violations_with_the_right_rule(spark, source) -> None:
    rules = suite_for(source)
    base = next(
        r.value for r in SignalGenerator(source, seed=5).records(50)
        if all(v is not None for v in r.value.values())
    )  # fmt: skip
    cases = VIOLATIONS[source]
    values = [base] + [{**base, field: bad} for field, bad, _ in cases]
    rows = sorted(
        source_frame(spark, source, values)
        .select("id", first_failed_rule(rules).alias("rule"), failure_detail(rules).alias("detail"))
        .collect()
    )
    assert (rows[0].rule, rows[0].detail) == (None, None)  # the untouched record passes
    assert [row.rule for row in rows[1:]] == [rule_id for _, _, rule_id in cases]
    for row, (field, _, rule_id) in zip(rows[1:], cases, strict=True):
        assert row.detail.startswith(f"{rule_id}: {field}="), row.detail
