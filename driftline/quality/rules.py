"""Row rules from Great Expectations 1.x suites, parsed into frozen :class:`Rule` values.

A suite is the JSON document GE 1.x writes (``ExpectationSuite.to_json_dict()``)::

    {"name": "payments",
     "expectations": [{"type": "expect_column_values_to_be_between",
                       "kwargs": {"column": "amount", "min_value": 0.0, "max_value": 100000.0},
                       "meta": {"notes": "..."}, "severity": "critical", "id": "<uuid or absent>"}],
     "meta": {"great_expectations_version": "1.24.1"}, "id": null, "notes": null}

Every expectation becomes one :class:`Rule`, in suite order. Row-level (column map)
types route rows: a row that violates one goes to the dead-letter side with the rule's
``rule_id``. Other known GE types (aggregates such as ``expect_column_mean_to_be_between``,
table types such as ``expect_table_row_count_to_be_between``) are kept with
``row_level=False`` for suite-level results. This module only checks structure and the
values driftline relies on; :mod:`driftline.expectations` also has GE itself validate the
suite, and :mod:`driftline.spark.rules` evaluates the rules.

Row-level semantics
-------------------
* A null value violates ``expect_column_values_to_not_be_null``; a non-null value
  violates ``expect_column_values_to_be_null``. For every other row-level type a null
  is never a violation (GE leaves nulls out of those expectations' domain).
* ``between``: ``min_value`` and ``max_value`` are inclusive unless ``strict_min`` /
  ``strict_max``; either bound may be absent, not both. NaN violates it (GE's engines
  disagree there: pandas drops NaN as null, Spark lets it pass a lone ``min_value``).
* ``mostly`` does not change routing: every violating row is dead-lettered. It is kept
  on the rule for the suite-level success rate.

>>> suite = {"name": "demo", "expectations": [
...     {"type": "expect_column_values_to_be_between",
...      "kwargs": {"column": "amount", "min_value": 0, "max_value": 100000, "mostly": 0.99}},
...     {"type": "expect_column_values_to_be_in_set",
...      "kwargs": {"column": "currency", "value_set": ["EUR", "USD"]}},
...     {"type": "expect_column_mean_to_be_between",
...      "kwargs": {"column": "amount", "min_value": 10, "max_value": 90}}]}
>>> rules = parse_suite(suite, origin="demo.json")
>>> [(r.rule_id, r.row_level) for r in rules]
[('amount:between', True), ('currency:in_set', True), ('amount:mean_between', False)]
>>> rules[0].describe(), rules[0].mostly
('amount between 0 and 100000', 0.99)
>>> check_columns(rules, ["amount", "country"], origin="demo.json")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftline.errors.ConfigError: demo.json: rule 'currency:in_set' (expectations[1]) checks column ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from driftline.errors import ConfigError

#: The row-level types driftline evaluates, with the short name used in rule ids.
ROW_LEVEL_TYPES: dict[str, str] = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_null": "null",
    "expect_column_values_to_be_between": "between",
    "expect_column_values_to_be_in_set": "in_set",
    "expect_column_values_to_not_be_in_set": "not_in_set",
    "expect_column_values_to_match_regex": "regex",
    "expect_column_values_to_not_match_regex": "not_regex",
    "expect_column_value_lengths_to_be_between": "length_between",
}

#: GE 1.x core types that judge a whole batch, not a row: kept, never used for routing.
#: Uniqueness and ordering are column map types in GE but need every row to decide.
SUITE_LEVEL_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_bootstrapped_ks_test_p_value_to_be_greater_than",
        "expect_column_chisquare_test_p_value_to_be_greater_than",
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
        "expect_column_kl_divergence_to_be_less_than",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_most_common_value_to_be_in_set",
        "expect_column_pair_cramers_phi_value_to_be_less_than",
        "expect_column_parameterized_distribution_ks_test_p_value_to_be_greater_than",
        "expect_column_proportion_of_non_null_values_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_quantile_values_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_to_exist",
        "expect_column_type_to_be",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_be_decreasing",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_not_be_outliers",
        "expect_compound_columns_to_be_unique",
        "expect_query_results_to_match_comparison",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_row_count_to_equal_other_table",
        "unexpected_rows_expectation",
    }
)

#: GE 1.x row-level types driftline cannot evaluate yet: refused rather than silently
#: ignored, since a suite author expects them to reject rows.
UNSUPPORTED_ROW_LEVEL_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_match_json_schema",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_multicolumn_sum_to_equal",
        "expect_multicolumn_values_to_be_equal",
        "expect_select_column_values_to_be_unique_within_record",
    }
)

#: Kwargs every row-level type accepts; the ones after ``mostly`` do not affect rows.
_COMMON_KWARGS = ("column", "mostly", "result_format", "catch_exceptions", "batch_id")
_BOUNDS = ("min_value", "max_value", "strict_min", "strict_max")
_TYPE_KWARGS: dict[str, tuple[str, ...]] = {
    "not_null": (),
    "null": (),
    "between": _BOUNDS,
    "in_set": ("value_set",),
    "not_in_set": ("value_set",),
    "regex": ("regex",),
    "not_regex": ("regex",),
    "length_between": _BOUNDS,
}
_SHOWN_VALUES = 10


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite.

    Attributes
    ----------
    rule_id:
        ``<column>:<short type>`` (``amount:between``); ``a+b:<short type>`` for
        multi-column and ``table:<short type>`` for table types; suffixed ``#2``, ``#3``
        ... for repeats, so it is unique within the suite and stays the same as long as
        the suite's expectations keep their order.
    expectation_type:
        The GE type, e.g. ``expect_column_values_to_be_between``.
    column:
        The column checked, ``None`` for table-level types.
    kwargs:
        The expectation's GE kwargs as written in the suite (lists as tuples); treat it
        as read-only.
    row_level:
        Whether the rule judges single rows (and so routes them).
    mostly:
        GE's success threshold for the suite-level result; 1.0 when absent.
    index:
        Position in the suite's ``expectations`` list.
    meta:
        The expectation's ``meta`` object (free-form; not compared).
    """

    rule_id: str
    expectation_type: str
    column: str | None
    kwargs: Mapping[str, Any] = field(hash=False)
    row_level: bool = True
    mostly: float = 1.0
    index: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def short_type(self) -> str:
        return _short_type(self.expectation_type)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the rule reads (``column``, ``column_A``/``column_B``, ``column_list``)."""
        named = [self.kwargs.get(key) for key in ("column", "column_A", "column_B")]
        listed = self.kwargs.get("column_list") or ()
        return tuple(c for c in [*named, *listed] if isinstance(c, str))

    @property
    def min_value(self) -> int | float | None:
        return self.kwargs.get("min_value")

    @property
    def max_value(self) -> int | float | None:
        return self.kwargs.get("max_value")

    @property
    def strict_min(self) -> bool:
        return bool(self.kwargs.get("strict_min", False))

    @property
    def strict_max(self) -> bool:
        return bool(self.kwargs.get("strict_max", False))

    @property
    def value_set(self) -> tuple[Any, ...]:
        return tuple(self.kwargs.get("value_set", ()))

    @property
    def regex(self) -> str | None:
        return self.kwargs.get("regex")

    def bounds_text(self) -> str:
        """``between 0 and 1``, ``>= 0``, ``between 0 (exclusive) and 1`` ..."""
        return format_bounds(self.min_value, self.max_value, self.strict_min, self.strict_max)

    def describe(self) -> str:
        """What the rule expects, in words.

        >>> Rule("card_id:regex", "expect_column_values_to_match_regex", "card_id",
        ...      {"column": "card_id", "regex": "^card-[0-9]+$"}).describe()
        'card_id matches regex ^card-[0-9]+$'
        """
        if not self.row_level:
            return f"{self.expectation_type}({', '.join(self.columns)})"
        phrase = {
            "not_null": "is not null",
            "null": "is null",
            "between": self.bounds_text(),
            "in_set": f"is in {format_values(self.value_set)}",
            "not_in_set": f"is not in {format_values(self.value_set)}",
            "regex": f"matches regex {self.regex}",
            "not_regex": f"does not match regex {self.regex}",
            "length_between": f"has a length {self.bounds_text()}",
        }[self.short_type]
        return f"{self.column} {phrase}"


def format_number(value: int | float) -> str:
    """A bound as people write it: ``0.0`` -> ``0``, ``0.5`` -> ``0.5``.

    >>> format_number(100000.0), format_number(0.25), format_number(-3)
    ('100000', '0.25', '-3')
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_bounds(
    min_value: int | float | None, max_value: int | float | None, strict_min: bool, strict_max: bool
) -> str:
    """The interval of a ``between`` rule in words.

    >>> format_bounds(0, 1, False, False), format_bounds(0, None, True, False)
    ('between 0 and 1', '> 0')
    >>> format_bounds(0, 1, True, False)
    'between 0 (exclusive) and 1'
    """
    if min_value is not None and max_value is not None:
        low = format_number(min_value) + (" (exclusive)" if strict_min else "")
        high = format_number(max_value) + (" (exclusive)" if strict_max else "")
        return f"between {low} and {high}"
    if min_value is not None:
        return f"{'>' if strict_min else '>='} {format_number(min_value)}"
    if max_value is not None:
        return f"{'<' if strict_max else '<='} {format_number(max_value)}"
    return "unbounded"


def format_values(values: Sequence[Any]) -> str:
    """A value set as JSON-like text, cut after ten values.

    >>> format_values(["EUR", "USD"]), format_values(range(12))
    ('{"EUR", "USD"}', '{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (12 values)}')
    """
    shown = [json.dumps(v) for v in list(values)[:_SHOWN_VALUES]]
    more = f", ... ({len(values)} values)" if len(values) > _SHOWN_VALUES else ""
    return "{" + ", ".join(shown) + more + "}"


def supported_types_text() -> str:
    return (
        f"supported row-level types: {', '.join(ROW_LEVEL_TYPES)}; "
        "other Great Expectations 1.x core types are kept as suite-level expectations"
    )


def parse_suite(document: Any, *, origin: str) -> list[Rule]:
    """The rules of a GE 1.x suite document, in suite order.

    Parameters
    ----------
    document:
        The parsed JSON of the suite.
    origin:
        Where it came from (the file path), used in every error message.

    Raises
    ------
    ConfigError
        Listing every problem: each names the expectation's index and type, what was
        expected and the valid options (types, kwargs).
    """
    if not isinstance(document, Mapping):
        raise ConfigError(f"{origin}: an expectation suite is a JSON object, got {type(document).__name__}")
    expectations = document.get("expectations")
    if not isinstance(expectations, list):
        raise ConfigError(
            f"{origin}: 'expectations' must be a list of expectation objects "
            f"(a Great Expectations 1.x suite), got {expectations!r}"
        )
    rules: list[Rule] = []
    problems: list[str] = []
    for index, expectation in enumerate(expectations):
        try:
            rules.append(_parse_expectation(index, expectation))
        except _Problem as problem:
            problems.append(f"  {problem}")
    if problems:
        raise ConfigError(
            "\n".join([f"{origin}: {len(problems)} problem(s) in the expectation suite:", *problems])
        )
    return _with_unique_ids(rules)


def check_columns(rules: Iterable[Rule], fields: Sequence[str], *, origin: str) -> None:
    """Raise a ConfigError naming every rule whose column is not in ``fields``."""
    known = set(fields)
    problems = [
        f"rule {rule.rule_id!r} (expectations[{rule.index}]) checks column {column!r}, which is not a field"
        for rule in rules
        for column in rule.columns
        if column not in known
    ]
    if problems:
        listed = "; ".join(problems)
        raise ConfigError(f"{origin}: {listed}; fields: {', '.join(fields)}")


def row_rules(rules: Iterable[Rule]) -> list[Rule]:
    """The rules that route rows, in suite order."""
    return [rule for rule in rules if rule.row_level]


class _Problem(Exception):
    """One expectation's problem, collected into the suite's ConfigError."""


def _parse_expectation(index: int, expectation: Any) -> Rule:
    where = f"expectations[{index}]"
    if not isinstance(expectation, Mapping):
        raise _Problem(f"{where}: expected an object with 'type' and 'kwargs', got {expectation!r}")
    kind = expectation.get("type")
    if kind is None and "expectation_type" in expectation:
        raise _Problem(
            f"{where} ({expectation['expectation_type']}): 'expectation_type' is the GE 0.x key; "
            "GE 1.x suites name it 'type' (re-export the suite with great_expectations>=1)"
        )
    if not isinstance(kind, str):
        raise _Problem(
            f"{where}: 'type' must be an expectation type name, got {kind!r}; {supported_types_text()}"
        )
    where = f"{where} ({kind})"
    kwargs = expectation.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise _Problem(f"{where}: 'kwargs' must be an object, got {kwargs!r}")
    meta = expectation.get("meta") or {}
    if kind in ROW_LEVEL_TYPES:
        _check_row_kwargs(where, ROW_LEVEL_TYPES[kind], kwargs)
        row_level = True
    elif kind in SUITE_LEVEL_TYPES:
        if "column" in kwargs and not isinstance(kwargs["column"], str):
            raise _Problem(f"{where}: 'column' must be a column name, got {kwargs['column']!r}")
        row_level = False
    elif kind in UNSUPPORTED_ROW_LEVEL_TYPES:
        raise _Problem(f"{where}: a row-level type driftline cannot evaluate yet; {supported_types_text()}")
    else:
        raise _Problem(f"{where}: unknown expectation type; {supported_types_text()}")
    mostly = kwargs.get("mostly", 1.0)
    return Rule(
        rule_id="",
        expectation_type=kind,
        column=kwargs.get("column"),
        kwargs={key: _frozen(value) for key, value in kwargs.items()},
        row_level=row_level,
        mostly=float(mostly) if _is_number(mostly) else 1.0,
        index=index,
        meta=dict(meta) if isinstance(meta, Mapping) else {},
    )


def _check_row_kwargs(where: str, short: str, kwargs: Mapping[str, Any]) -> None:
    valid = (*_COMMON_KWARGS, *_TYPE_KWARGS[short])
    for key in ("row_condition", "condition_parser"):
        if kwargs.get(key) not in (None, ""):
            raise _Problem(
                f"{where}: {key!r} (conditional expectations) is not supported for row rules; "
                f"remove it or split the source; valid kwargs: {', '.join(valid)}"
            )
    unknown = [key for key in kwargs if key not in valid and key not in ("row_condition", "condition_parser")]
    if unknown:
        raise _Problem(
            f"{where}: unknown kwarg(s) {', '.join(map(repr, unknown))}; valid kwargs: {', '.join(valid)}"
        )
    parameters = [key for key, value in kwargs.items() if isinstance(value, Mapping)]
    if parameters:
        raise _Problem(
            f"{where}: {parameters[0]!r} is a suite parameter ({kwargs[parameters[0]]!r}); "
            "row rules need literal values"
        )
    column = kwargs.get("column")
    if not isinstance(column, str) or not column:
        raise _Problem(f"{where}: 'column' is required and must be a column name, got {column!r}")
    mostly = kwargs.get("mostly", 1.0)
    if not _is_number(mostly) or not 0.0 <= mostly <= 1.0:
        raise _Problem(f"{where}: 'mostly' must be a number between 0 and 1, got {mostly!r}")
    if short in ("between", "length_between"):
        _check_bounds(where, short, kwargs)
    elif short in ("in_set", "not_in_set"):
        _check_value_set(where, kwargs.get("value_set"))
    elif short in ("regex", "not_regex") and (not isinstance(kwargs.get("regex"), str)):
        raise _Problem(f"{where}: 'regex' is required and must be a string, got {kwargs.get('regex')!r}")


def _check_bounds(where: str, short: str, kwargs: Mapping[str, Any]) -> None:
    lengths = short == "length_between"
    expected = "an integer" if lengths else "a finite number"
    for key in ("min_value", "max_value"):
        value = kwargs.get(key)
        if value is None:
            continue
        fits = _is_number(value) and math.isfinite(value) and (not lengths or float(value).is_integer())
        if not fits:
            raise _Problem(f"{where}: {key!r} must be {expected} or null, got {value!r}")
    for key in ("strict_min", "strict_max"):
        if not isinstance(kwargs.get(key, False), bool):
            raise _Problem(f"{where}: {key!r} must be true or false, got {kwargs[key]!r}")
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        raise _Problem(f"{where}: give 'min_value', 'max_value' or both; both are missing or null")
    if low is not None and high is not None and low > high:
        raise _Problem(f"{where}: 'min_value' ({low!r}) must not be greater than 'max_value' ({high!r})")


def _check_value_set(where: str, values: Any) -> None:
    if not isinstance(values, list | tuple) or not values:
        raise _Problem(f"{where}: 'value_set' must be a non-empty list of values, got {values!r}")
    kinds = {_value_kind(v) for v in values}
    if None in kinds:
        bad = next(v for v in values if _value_kind(v) is None)
        raise _Problem(
            f"{where}: 'value_set' holds {bad!r}; values must be strings, numbers or booleans "
            "(nulls never fail a set rule: use expect_column_values_to_not_be_null for them)"
        )
    if len(kinds) > 1:
        raise _Problem(f"{where}: 'value_set' mixes {' and '.join(sorted(kinds))}; use the column's one type")


def _value_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, str):
        return "strings"
    if _is_number(value) and math.isfinite(value):
        return "numbers"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _short_type(kind: str) -> str:
    if kind in ROW_LEVEL_TYPES:
        return ROW_LEVEL_TYPES[kind]
    short = kind.removeprefix("expect_")
    for prefix in ("column_values_to_", "column_", "table_"):
        if short.startswith(prefix):
            short = short.removeprefix(prefix)
            break
    short = short.replace("not_be_", "not_").removeprefix("be_")
    short = short.removesuffix("_to_be").replace("_to_be_", "_").replace("_to_", "_")
    return short.removeprefix("to_")


def _with_unique_ids(rules: list[Rule]) -> list[Rule]:
    seen: dict[str, int] = {}
    unique = []
    for rule in rules:
        subject = "+".join(rule.columns) or "table"
        base = f"{subject}:{rule.short_type}"
        seen[base] = seen.get(base, 0) + 1
        rule_id = base if seen[base] == 1 else f"{base}#{seen[base]}"
        unique.append(replace(rule, rule_id=rule_id))
    return unique
