"""Window expectations judged like Great Expectations 1.x judges the same rows: each case is
validated by GX itself (pandas engine, an ephemeral context) on a window's rows, and
driftline's verdict and observed value, from the facts the job keeps, must agree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import ConfigError
from driftline.quality.rules import parse_suite
from driftline.quality.window_rules import (
    WINDOW_TYPES,
    ColumnFacts,
    WindowFacts,
    evaluate,
    window_rules,
)


@pytest.fixture(scope="module")
def gx_validate():
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("windows").add_dataframe_asset("window")
    whole = asset.add_batch_definition_whole_dataframe("whole")

    def validate(frame: pd.DataFrame, kind: str, **kwargs):
        expectation = gx.expectations.__dict__[_class_name(kind)](**kwargs)
        return whole.get_batch(batch_parameters={"dataframe": frame}).validate(expectation)

    return validate


def _class_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def facts_of(frame: pd.DataFrame) -> WindowFacts:
    """What the job keeps for a window, computed here with pandas."""
    columns = {}
    for name in frame.columns:
        values = frame[name].dropna()
        numeric = pd.api.types.is_numeric_dtype(frame[name])
        counts = values.value_counts()
        columns[name] = ColumnFacts(
            non_null=len(values),
            mean=float(values.mean()) if numeric and len(values) else None,
            stddev=float(values.std(ddof=1)) if numeric and len(values) > 1 else None,
            min=float(values.min()) if numeric and len(values) else None,
            max=float(values.max()) if numeric and len(values) else None,
            distinct=len(counts),
            repeated=int(counts[counts > 1].sum()),
        )
    return WindowFacts(rows=len(frame), columns=columns)


def rule_of(kind: str, **kwargs):
    (rule,) = parse_suite({"expectations": [{"type": kind, "kwargs": kwargs}]}, origin="t.json")
    return rule


def agree(gx_validate, frame: pd.DataFrame, kind: str, **kwargs) -> None:
    theirs = gx_validate(frame, kind, **kwargs)
    mine = evaluate(rule_of(kind, **kwargs), facts_of(frame))
    assert mine.success == theirs.success, (kind, kwargs, mine, theirs.result)
    if kind == "expect_column_values_to_be_unique":
        assert mine.unexpected_count == theirs.result["unexpected_count"]
        percent = theirs.result["unexpected_percent"]
        assert mine.observed == (None if percent is None else pytest.approx(percent / 100))
    else:
        observed = theirs.result["observed_value"]
        assert (mine.observed is None) == (observed is None) or (
            observed is not None and math.isnan(observed) and mine.observed is None
        ), (kind, mine.observed, observed)
        if mine.observed is not None:
            assert mine.observed == pytest.approx(float(observed), rel=1e-9, abs=1e-12)


WINDOW = pd.DataFrame({
    "amount": [10.0, 12.5, None, 40.0, 7.25, None, 12.5, 100.0],
    "tx": ["a", "b", "c", "a", None, "d", "b", "e"],
})  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("expect_table_row_count_to_be_between", {"min_value": 8, "max_value": 8}),
        ("expect_table_row_count_to_be_between", {"min_value": 8, "strict_min": True}),
        ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 30.375}),
        ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 30.375, "strict_min": True}),
        ("expect_column_stdev_to_be_between", {"column": "amount", "max_value": 30}),
        ("expect_column_stdev_to_be_between", {"column": "amount", "max_value": 40}),
        ("expect_column_min_to_be_between", {"column": "amount", "min_value": 7.25, "max_value": 8}),
        ("expect_column_max_to_be_between", {"column": "amount", "max_value": 99.9}),
        ("expect_column_sum_to_be_between", {"column": "amount", "min_value": 182.25, "max_value": 182.25}),
        ("expect_column_proportion_of_non_null_values_to_be_between", {"column": "amount", "min_value": 0.8}),
        ("expect_column_proportion_of_non_null_values_to_be_between", {"column": "tx", "min_value": 0.875}),
        ("expect_column_values_to_be_unique", {"column": "tx"}),
        ("expect_column_values_to_be_unique", {"column": "tx", "mostly": 0.4}),
        ("expect_column_values_to_be_unique", {"column": "tx", "mostly": 0.5}),
        ("expect_column_proportion_of_unique_values_to_be_between", {"column": "tx", "min_value": 5 / 7}),
        ("expect_column_unique_value_count_to_be_between", {"column": "tx", "min_value": 5, "max_value": 5}),
        ("expect_column_unique_value_count_to_be_between", {"column": "tx", "max_value": 4}),
    ],
)
def test_a_window_is_judged_as_great_expectations_judges_its_rows(gx_validate, kind, kwargs) -> None:
    agree(gx_validate, WINDOW, kind, **kwargs)


def test_an_all_null_window_fails_its_aggregates_and_passes_uniqueness(gx_validate) -> None:
    empty = pd.DataFrame({"amount": pd.Series([None, None], dtype="float64"), "tx": [None, None]})
    agree(gx_validate, empty, "expect_column_mean_to_be_between", column="amount", min_value=0)
    agree(gx_validate, empty, "expect_column_values_to_be_unique", column="tx")


windows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 2))),
        st.one_of(st.none(), st.integers(0, 6)),
    ),
    min_size=1,
    max_size=40,
).map(lambda rows: pd.DataFrame(rows, columns=["x", "k"]).astype({"x": "float64", "k": "Int64"}))


@settings(max_examples=80, deadline=None)
@given(
    frame=windows,
    kind=st.sampled_from(WINDOW_TYPES),
    low=st.floats(-500, 500).map(lambda v: round(v, 1)),
    width=st.floats(0, 600).map(lambda v: round(v, 1)),
    mostly=st.sampled_from([None, 0.5, 0.9]),
)
def test_random_windows_agree_with_great_expectations(gx_validate, frame, kind, low, width, mostly) -> None:
    if kind == "expect_table_row_count_to_be_between":
        kwargs = {"min_value": int(abs(low)) % 40, "max_value": int(abs(low)) % 40 + int(width) % 10}
    elif kind == "expect_column_values_to_be_unique":
        kwargs = {"column": "k", **({"mostly": mostly} if mostly else {})}
    elif kind.startswith("expect_column_proportion"):
        column = "k" if "unique" in kind else "x"
        kwargs = {"column": column, "min_value": abs(low) / 500, "max_value": min(1.0, abs(low) / 500 + 0.3)}
    elif kind == "expect_column_unique_value_count_to_be_between":
        kwargs = {"column": "k", "min_value": int(abs(low)) % 8}
    else:
        kwargs = {"column": "x", "min_value": low, "max_value": low + width}
    frame = frame.astype({"k": "float64"}) if "unique" not in kind else frame.astype({"k": "object"})
    agree(gx_validate, frame, kind, **kwargs)


# --- what the job refuses at start ---------------------------------------------------------


def suite_rules(*expectations):
    return parse_suite({"expectations": list(expectations)}, origin="suites/p.json")


def test_types_the_stream_cannot_evaluate_stop_the_job_naming_them_and_the_supported_ones() -> None:
    rules = suite_rules(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        {"type": "expect_column_median_to_be_between", "kwargs": {"column": "amount", "min_value": 1}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "country", "min_value": 1}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "tx_id"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {}},
    )
    with pytest.raises(ConfigError) as caught:
        window_rules(
            rules, numeric=["amount"], fields=["amount", "country", "transaction_id"], origin="p.json"
        )
    lines = str(caught.value).splitlines()
    assert lines[0] == "p.json: 4 expectation(s) cannot be evaluated:"
    assert lines[1] == (
        "  expectations[1] (expect_column_median_to_be_between): driftline cannot evaluate this type on a stream"
    )
    assert lines[2] == (
        "  expectations[2] (expect_column_mean_to_be_between): column 'country' is not a numeric feature of "
        "the source, and the window statistics exist for those only; numeric features: amount"
    )
    assert lines[3] == (
        "  expectations[3] (expect_column_values_to_be_unique): column 'tx_id' is not a field; "
        "fields: amount, country, transaction_id"
    )
    assert lines[4] == (
        "  expectations[4] (expect_table_row_count_to_be_between): give 'min_value', 'max_value' or both; "
        "both are missing or null"
    )
    assert lines[5].startswith("  (supported window expectations: expect_table_row_count_to_be_between, ")
    assert all(kind in lines[5] for kind in WINDOW_TYPES)


def test_the_demo_suites_window_expectations_are_all_evaluated() -> None:
    """The demo pipeline loads (its loader runs :func:`window_rules` on every suite), and each
    demo suite's one suite-level expectation is among those evaluated."""
    from driftline.config import load_pipeline
    from driftline.expectations import load_expectation_suite
    from tests.conftest import DEMO_PIPELINE

    config = load_pipeline(DEMO_PIPELINE)
    chosen = {}
    for name, source in config.sources.items():
        rules = load_expectation_suite(config.path(source.expectations), with_great_expectations=False)
        fields = [*source.features, *(r.column for r in rules if r.column)]
        chosen[name] = [
            r.rule_id
            for r in window_rules(rules, numeric=source.numeric_features, fields=fields, origin=name)
        ]
    assert chosen == {
        "payments": ["transaction_id:unique"],
        "sensors": ["pressure_kpa:proportion_of_non_null_values_between"],
        "clickstream": ["scroll_depth:mean_between"],
    }


def test_facts_sum_is_mean_times_count() -> None:
    assert ColumnFacts(non_null=4, mean=2.5).sum == 10.0 and ColumnFacts().sum == 0.0
    assert np.isclose(ColumnFacts(non_null=3, mean=1 / 3).sum, 1.0)
