"""Expectation suites -> rules: GE 1.x's real export format, every refusal names index, type and options."""

import copy
import json
import subprocess
import sys
import tomllib
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from driftline.config import pipeline_from_dict
from driftline.errors import ConfigError
from driftline.expectations import load_expectation_suite
from driftline.quality.rules import ROW_LEVEL_TYPES, check_columns, parse_suite, row_rules
from tests.conftest import DEMO_PIPELINE, REPO

SUITES = REPO / "pipelines" / "expectations"


def expectation(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {}}


def suite(*expectations: dict) -> dict:
    return {"name": "t", "expectations": list(expectations), "meta": {}}


def refusal(*expectations: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_suite(suite(*expectations), origin="suites/t.json")
    return str(caught.value)


def test_a_suite_exported_by_great_expectations_parses_into_rules() -> None:
    import great_expectations as gx
    from great_expectations import expectations as gxe

    exported = gx.ExpectationSuite(
        name="payments",
        expectations=[
            gxe.ExpectColumnValuesToBeBetween(
                column="amount", min_value=0, max_value=100, strict_max=True, mostly=0.95
            ),
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=["EUR", "USD"]),
            gxe.ExpectColumnValuesToNotMatchRegex(column="card_id", regex="^test-"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="card_id", min_value=3),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnMeanToBeBetween(column="amount", min_value=10, max_value=90),
        ],
    ).to_json_dict()
    document = json.loads(json.dumps(exported))  # exactly what a file would hold
    assert document["expectations"][0]["kwargs"] == {
        "column": "amount",
        "mostly": 0.95,
        "min_value": 0.0,
        "max_value": 100.0,
        "strict_max": True,
    }
    rules = parse_suite(document, origin="payments.json")
    assert [(r.rule_id, r.column, r.row_level, r.index) for r in rules] == [
        ("amount:between", "amount", True, 0),
        ("currency:in_set", "currency", True, 1),
        ("card_id:not_regex", "card_id", True, 2),
        ("card_id:length_between", "card_id", True, 3),
        ("table:row_count_between", None, False, 4),
        ("amount:mean_between", "amount", False, 5),
    ]
    amount = rules[0]
    assert (amount.min_value, amount.max_value, amount.strict_min, amount.strict_max) == (
        0.0,
        100.0,
        False,
        True,
    )
    assert amount.mostly == 0.95 and rules[1].mostly == 1.0
    assert amount.expectation_type == "expect_column_values_to_be_between"
    assert rules[1].value_set == ("EUR", "USD") and rules[2].regex == "^test-"
    assert rules[3].describe() == "card_id has a length >= 3"
    assert [r.rule_id for r in row_rules(rules)] == [r.rule_id for r in rules[:4]]


def test_rule_ids_are_unique_and_readable_for_repeats() -> None:
    rules = parse_suite(
        suite(
            expectation("expect_column_values_to_be_between", column="amount", min_value=0),
            expectation("expect_column_values_to_not_be_null", column="amount"),
            expectation("expect_column_values_to_be_between", column="amount", max_value=10),
            expectation("expect_column_values_to_be_between", column="amount", max_value=20),
            expectation("expect_compound_columns_to_be_unique", column_list=["a", "b"]),
        ),
        origin="t.json",
    )
    assert [r.rule_id for r in rules] == [
        "amount:between", "amount:not_null", "amount:between#2", "amount:between#3", "a+b:compound_columns_unique"
    ]  # fmt: skip
    assert rules[4].columns == ("a", "b") and rules[4].column is None


def test_every_supported_row_level_type_parses() -> None:
    kwargs = {
        "not_null": {}, "null": {}, "between": {"min_value": 1}, "in_set": {"value_set": [1, 2]},
        "not_in_set": {"value_set": ["x"]}, "regex": {"regex": "^a"}, "not_regex": {"regex": "b$"},
        "length_between": {"max_value": 4},
    }  # fmt: skip
    rules = parse_suite(
        suite(*(expectation(kind, column="c", **kwargs[short]) for kind, short in ROW_LEVEL_TYPES.items())),
        origin="t.json",
    )
    assert [r.rule_id for r in rules] == [f"c:{short}" for short in ROW_LEVEL_TYPES.values()]
    assert all(r.row_level for r in rules)


def test_rules_are_frozen_and_hashable() -> None:
    (rule,) = parse_suite(suite(expectation("expect_column_values_to_not_be_null", column="a")), origin="t")
    with pytest.raises(FrozenInstanceError):
        rule.column = "b"  # type: ignore[misc]
    assert len({rule, rule}) == 1


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (expectation("expect_column_values_to_be_betwen", column="a", min_value=0),
         "suites/t.json: 1 problem(s) in the expectation suite:\n  expectations[0] (expect_column_values_to_be_betwen): unknown expectation type; supported row-level types: expect_column_values_to_not_be_null, expect_column_values_to_be_null, expect_column_values_to_be_between, expect_column_values_to_be_in_set, expect_column_values_to_not_be_in_set, expect_column_values_to_match_regex, expect_column_values_to_not_match_regex, expect_column_value_lengths_to_be_between; other Great Expectations 1.x core types are kept as suite-level expectations"),
        (expectation("expect_column_values_to_match_strftime_format", column="a", strftime_format="%Y"),
         "expectations[0] (expect_column_values_to_match_strftime_format): a row-level type driftline cannot evaluate yet; supported row-level types: expect_column_values_to_not_be_null,"),
        ({"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
         "expectations[0] (expect_column_values_to_not_be_null): 'expectation_type' is the GE 0.x key; GE 1.x suites name it 'type'"),
        ({"kwargs": {"column": "a"}}, "expectations[0]: 'type' must be an expectation type name, got None; supported row-level types:"),
        ("expect_column_values_to_not_be_null", "expectations[0]: expected an object with 'type' and 'kwargs', got 'expect_column_values_to_not_be_null'"),
        (expectation("expect_column_values_to_not_be_null"),
         "expectations[0] (expect_column_values_to_not_be_null): 'column' is required and must be a column name, got None"),
        (expectation("expect_column_values_to_be_in_set", column=3, value_set=["a"]),
         "'column' is required and must be a column name, got 3"),
        (expectation("expect_column_mean_to_be_between", column=["a"], min_value=1),
         "expectations[0] (expect_column_mean_to_be_between): 'column' must be a column name, got ['a']"),
        (expectation("expect_column_values_to_be_between", column="a"),
         "expectations[0] (expect_column_values_to_be_between): give 'min_value', 'max_value' or both; both are missing or null"),
        (expectation("expect_column_values_to_be_between", column="a", min_value=5, max_value=1),
         "'min_value' (5) must not be greater than 'max_value' (1)"),
        (expectation("expect_column_values_to_be_between", column="a", min_value="0"),
         "'min_value' must be a finite number or null, got '0'"),
        (expectation("expect_column_values_to_be_between", column="a", min_value=True),
         "'min_value' must be a finite number or null, got True"),
        (expectation("expect_column_values_to_be_between", column="a", min_value=0, strict_min="yes"),
         "'strict_min' must be true or false, got 'yes'"),
        (expectation("expect_column_value_lengths_to_be_between", column="a", min_value=1.5),
         "(expect_column_value_lengths_to_be_between): 'min_value' must be an integer or null, got 1.5"),
        (expectation("expect_column_values_to_be_in_set", column="a", value_set=[]),
         "expectations[0] (expect_column_values_to_be_in_set): 'value_set' must be a non-empty list of values, got []"),
        (expectation("expect_column_values_to_not_be_in_set", column="a", value_set="EUR"),
         "'value_set' must be a non-empty list of values, got 'EUR'"),
        (expectation("expect_column_values_to_be_in_set", column="a", value_set=["a", None]),
         "'value_set' holds None; values must be strings, numbers or booleans"),
        (expectation("expect_column_values_to_be_in_set", column="a", value_set=["1", 2]),
         "'value_set' mixes numbers and strings; use the column's one type"),
        (expectation("expect_column_values_to_match_regex", column="a"),
         "expectations[0] (expect_column_values_to_match_regex): 'regex' is required and must be a string, got None"),
        (expectation("expect_column_values_to_be_between", column="a", min_value=0, maximum=3),
         "unknown kwarg(s) 'maximum'; valid kwargs: column, mostly, result_format, catch_exceptions, batch_id, min_value, max_value, strict_min, strict_max"),
        (expectation("expect_column_values_to_not_be_null", column="a", row_condition='b=="x"', condition_parser="pandas"),
         "'row_condition' (conditional expectations) is not supported for row rules"),
        (expectation("expect_column_values_to_be_between", column="a", min_value={"$PARAMETER": "low"}),
         "'min_value' is a suite parameter ({'$PARAMETER': 'low'}); row rules need literal values"),
        (expectation("expect_column_values_to_not_be_null", column="a", mostly=1.5),
         "'mostly' must be a number between 0 and 1, got 1.5"),
    ],
)  # fmt: skip
def test_refusals_name_file_index_type_and_options(bad, expected) -> None:
    message = refusal(bad)
    assert message.startswith("suites/t.json: ")
    assert expected in message


def test_every_problem_of_a_suite_is_reported_at_once() -> None:
    message = refusal(
        expectation("expect_column_values_to_not_be_null", column="ok"),
        expectation("expect_column_values_to_be_between", column="a"),
        expectation("expect_nothing"),
    )
    assert message.splitlines()[0] == "suites/t.json: 2 problem(s) in the expectation suite:"
    assert "expectations[1] (expect_column_values_to_be_between)" in message.splitlines()[1]
    assert "expectations[2] (expect_nothing): unknown expectation type" in message.splitlines()[2]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "suites/t.json: an expectation suite is a JSON object, got list"),
        ({"name": "t"}, "suites/t.json: 'expectations' must be a list of expectation objects"),
    ],
)
def test_a_document_that_is_not_a_suite_is_refused(document, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_suite(document, origin="suites/t.json")


def test_check_columns_lists_every_missing_column_and_the_fields() -> None:
    rules = parse_suite(
        suite(
            expectation("expect_column_values_to_not_be_null", column="amount"),
            expectation("expect_column_values_to_be_in_set", column="curency", value_set=["EUR"]),
            expectation("expect_column_mean_to_be_between", column="amout", min_value=1),
            expectation("expect_table_row_count_to_be_between", min_value=1),
        ),
        origin="t.json",
    )
    check_columns(rules, ["amount", "curency", "amout"], origin="t.json")  # all present: no error
    with pytest.raises(ConfigError) as caught:
        check_columns(rules, ["amount", "currency"], origin="t.json")
    assert str(caught.value) == (
        "t.json: rule 'curency:in_set' (expectations[1]) checks column 'curency', which is not a field; "
        "rule 'amout:mean_between' (expectations[2]) checks column 'amout', which is not a field; "
        "fields: amount, currency"
    )


# --- the GE edge: driftline.expectations -------------------------------------------------


def test_a_suite_saved_in_a_great_expectations_context_loads_with_its_ids(tmp_path) -> None:
    import great_expectations as gx
    from great_expectations import expectations as gxe

    context = gx.get_context(mode="ephemeral")
    saved = context.suites.add(gx.ExpectationSuite(name="saved"))
    saved.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=10))
    document = saved.to_json_dict()
    assert document["id"] and document["expectations"][0]["id"]  # what a saved suite carries
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(document))
    (rule,) = load_expectation_suite(path)
    assert (rule.rule_id, rule.min_value, rule.max_value) == ("amount:between", 0.0, 10.0)


@pytest.mark.parametrize("source", ["payments", "sensors", "clickstream"])
def test_demo_suites_are_valid_great_expectations_suites(source) -> None:
    import great_expectations as gx

    document = json.loads((SUITES / f"{source}.json").read_text())
    rebuilt = gx.ExpectationSuite(**document).to_json_dict()
    assert [e["type"] for e in rebuilt["expectations"]] == [e["type"] for e in document["expectations"]]
    rules = load_expectation_suite(SUITES / f"{source}.json")
    assert len(rules) == len(document["expectations"])
    assert sum(not r.row_level for r in rules) == 1  # each demo suite carries one suite-level check
    assert len({r.rule_id for r in rules}) == len(rules)


def test_great_expectations_refuses_a_broken_suite_with_its_own_message(tmp_path) -> None:
    from pydantic.v1 import ValidationError as GEValidationError

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(suite(
        expectation("expect_column_values_to_not_be_null", column="a"),
        # driftline keeps suite-level kwargs as written; GE knows this one has no `maximum`
        expectation("expect_column_mean_to_be_between", column="a", min_value=1, maximum=3),
    )))  # fmt: skip
    parse_suite(json.loads(broken.read_text()), origin="pure parse alone accepts it")
    with pytest.raises(ConfigError) as caught:
        load_expectation_suite(broken)
    message = str(caught.value)
    assert message.startswith(
        f"{broken}: expectations[1] (expect_column_mean_to_be_between): Great Expectations refuses it:"
    )
    assert "maximum | extra fields not permitted" in message
    assert "supported row-level types: expect_column_values_to_not_be_null" in message
    assert isinstance(caught.value.__cause__, GEValidationError)


def test_great_expectations_refuses_an_unknown_type_and_a_bad_severity(tmp_path) -> None:
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        json.dumps(suite(expectation("expect_column_values_to_be_betwen", column="a", min_value=0)))
    )
    with pytest.raises(
        ConfigError,
        match=r"expectations\[0\] \(expect_column_values_to_be_betwen\): Great Expectations refuses it: expect_column_values_to_be_betwen not found",
    ):
        load_expectation_suite(unknown)
    severity = tmp_path / "severity.json"
    severity.write_text(
        json.dumps(
            suite(expectation("expect_column_values_to_not_be_null", column="a") | {"severity": "fatal"})
        )
    )
    with pytest.raises(
        ConfigError,
        match=r"does not read it as an expectation suite: .*Must be one of: critical, warning, info",
    ):
        load_expectation_suite(severity)


def test_driftline_checks_what_great_expectations_lets_through(tmp_path) -> None:
    lax = tmp_path / "lax.json"  # GE builds both of these; neither can route rows sensibly
    lax.write_text(json.dumps(suite(
        expectation("expect_column_values_to_be_between", column="a", min_value=5, max_value=1),
        expectation("expect_column_values_to_be_between", column="a", min_value=0, strict_min="yes"),
    )))  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_expectation_suite(lax)
    assert f"{lax}: 2 problem(s) in the expectation suite:" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "expectation suite {path} does not exist"),
        ("{nope", "{path}: not valid JSON: Expecting property name"),
    ],
)
def test_missing_or_unparseable_file(tmp_path, text, expected) -> None:
    path = tmp_path / "suite.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=expected.format(path=path).replace("(", r"\(")):
        load_expectation_suite(path)


# --- the pipeline definition's `expectations` key ----------------------------------------

DEMO = tomllib.loads(DEMO_PIPELINE.read_text())


def load_demo(mutate, base_dir: Path = DEMO_PIPELINE.parent):
    data = copy.deepcopy(DEMO)
    mutate(data)
    return pipeline_from_dict(data, base_dir=base_dir, origin="demo.toml")


def test_the_demo_names_a_suite_per_source_relative_to_its_file() -> None:
    config = load_demo(lambda d: None)
    for name, source in config.sources.items():
        assert source.expectations == f"expectations/{name}.json"
        assert config.path(source.expectations) == SUITES / f"{name}.json"


def test_a_missing_suite_file_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_demo(lambda d: d["sources"]["sensors"].update(expectations="expectations/sensor.json"))
    assert (
        f"  sources.sensors.expectations: expectation suite {SUITES / 'sensor.json'} does not exist"
        in str(caught.value)
    )


def test_a_suite_column_missing_from_the_reader_schema_names_the_key_and_fields(tmp_path) -> None:
    document = json.loads((SUITES / "payments.json").read_text())
    document["expectations"].append(
        expectation("expect_column_values_to_be_in_set", column="channel", value_set=["pos"])
    )
    (tmp_path / "payments.json").write_text(json.dumps(document))

    def pin_v1(d):
        d["sources"]["payments"]["schema_version"] = 1
        d["sources"]["payments"]["expectations"] = str(tmp_path / "payments.json")

    with pytest.raises(ConfigError) as caught:
        load_demo(pin_v1)
    assert (
        f"  sources.payments.expectations: {tmp_path / 'payments.json'} against payments v1: "
        f"rule 'channel:in_set' (expectations[{len(document['expectations']) - 1}]) checks column 'channel', "
        "which is not a field; fields: transaction_id, card_id, event_time, amount, currency,"
    ) in str(caught.value)
    pinned_v2 = load_demo(
        lambda d: d["sources"]["payments"].update(expectations=str(tmp_path / "payments.json"))
    )
    assert pinned_v2.sources["payments"].expectations == str(tmp_path / "payments.json")


def test_a_broken_suite_fails_the_pipeline_load_naming_the_key(tmp_path) -> None:
    # the loader parses without importing GE (seconds per command); GE validates at job start
    (tmp_path / "bad.json").write_text(
        json.dumps(suite(expectation("expect_column_values_to_be_in_set", column="status")))
    )
    with pytest.raises(ConfigError) as caught:
        load_demo(lambda d: d["sources"]["sensors"].update(expectations=str(tmp_path / "bad.json")))
    message = str(caught.value)
    assert "  sources.sensors.expectations: " in message
    assert (
        "expectations[0] (expect_column_values_to_be_in_set): 'value_set' must be a non-empty list" in message
    )


def test_the_pure_rules_module_loads_no_edge_dependency() -> None:
    heavy = ["pyspark", "confluent_kafka", "great_expectations"]
    code = f"import sys, json, driftline.quality.rules; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []
