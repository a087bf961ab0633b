"""Suite-level expectations, evaluated once per closed window on that window's valid rows.

A Great Expectations suite mixes row rules (they route single rows, see
:mod:`driftline.quality.rules`) with expectations that judge a whole batch of rows: a
mean, a share of nulls, uniqueness. In a stream the batch they judge is an event-time
window: when the watermark closes a window, each of these expectations is evaluated on
the window's valid rows (rows that decoded, passed the row rules and were on time),
with Great Expectations 1.x semantics:

================================================================  =========================================
type                                                              observed value
================================================================  =========================================
``expect_table_row_count_to_be_between``                          rows in the window
``expect_column_mean_to_be_between``                              mean of the non-null values
``expect_column_stdev_to_be_between``                             sample standard deviation (``n - 1``)
``expect_column_min_to_be_between``                               smallest value
``expect_column_max_to_be_between``                               largest value
``expect_column_sum_to_be_between``                               sum of the values
``expect_column_proportion_of_non_null_values_to_be_between``     non-null rows / rows
``expect_column_values_to_be_unique``                             share of non-null rows whose value repeats
``expect_column_proportion_of_unique_values_to_be_between``       distinct values / non-null rows
``expect_column_unique_value_count_to_be_between``                distinct non-null values
================================================================  =========================================

"between" is inclusive unless ``strict_min`` / ``strict_max``; a missing bound is open.
An aggregate of no values (the mean of an all-null window) is ``None`` and fails, as in
GX, except the sum and the share of unique values, which are 0.
``expect_column_values_to_be_unique`` is a column map expectation: its unexpected rows
are the non-null rows whose value occurs more than once in the window, and it succeeds
when their share of the non-null rows is at most ``1 - mostly`` (a window
without non-null values succeeds). Aggregates of a column need the column to be one
of the source's numeric features (the window statistics the job keeps), the non-null
share one of its features; the three uniqueness types take any field (the job keeps
the window's value hashes).

Any other suite-level type is refused when the job starts (:func:`window_rules`), with
its name and the supported ones: nothing in a suite is dropped without a word.
Pure: no Spark; the job feeds :func:`evaluate` the window's facts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.errors import ConfigError
from driftline.quality.rules import Rule, format_bounds

#: what each supported type observes: a numeric feature's statistic, the table, or uniqueness
STATISTIC_TYPES: dict[str, str] = {
    "expect_column_mean_to_be_between": "mean",
    "expect_column_stdev_to_be_between": "stddev",
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_sum_to_be_between": "sum",
}
UNIQUENESS_TYPES = frozenset({
    "expect_column_values_to_be_unique",
    "expect_column_proportion_of_unique_values_to_be_between",
    "expect_column_unique_value_count_to_be_between",
})  # fmt: skip
WINDOW_TYPES: tuple[str, ...] = (
    "expect_table_row_count_to_be_between",
    *STATISTIC_TYPES,
    "expect_column_proportion_of_non_null_values_to_be_between",
    *sorted(UNIQUENESS_TYPES),
)
_BOUNDED = frozenset(WINDOW_TYPES) - {"expect_column_values_to_be_unique"}
_KWARGS = {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly", "result_format",
           "catch_exceptions", "meta"}  # fmt: skip


@dataclass(frozen=True)
class ColumnFacts:
    """One column in one window: what the aggregates need."""

    non_null: int = 0
    mean: float | None = None
    stddev: float | None = None
    min: float | None = None
    max: float | None = None
    distinct: int | None = None  # distinct non-null values (uniqueness columns only)
    repeated: int | None = None  # non-null rows whose value occurs more than once

    @property
    def sum(self) -> float | None:
        """``mean * non_null``; 0 for a column without values (GX: the empty sum)."""
        if self.non_null == 0:
            return 0.0
        return None if self.mean is None else self.mean * self.non_null


@dataclass(frozen=True)
class WindowFacts:
    """A closed window's valid rows, as the job keeps them: the row count and per column."""

    rows: int
    columns: Mapping[str, ColumnFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowResult:
    """One row of ``quality_results``: an expectation judged on one window."""

    rule: Rule
    success: bool
    observed: float | None
    element_count: int
    unexpected_count: int | None = None

    def as_row(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "expectation": rule.rule_id, "expectation_type": rule.expectation_type, "column": rule.column,
            "success": self.success, "observed_value": self.observed, "element_count": self.element_count,
            "unexpected_count": self.unexpected_count, "min_value": _float(rule.min_value),
            "max_value": _float(rule.max_value), "mostly": rule.mostly if rule.kwargs.get("mostly") else None,
            "expects": describe(rule),
        }  # fmt: skip


def supported_text() -> str:
    return f"supported window expectations: {', '.join(WINDOW_TYPES)}"


def describe(rule: Rule) -> str:
    """What a window expectation expects, in words: ``mean of scroll_depth between 0.3 and 0.7``."""
    bounds = format_bounds(rule.min_value, rule.max_value, rule.strict_min, rule.strict_max)
    kind = rule.expectation_type
    if kind == "expect_table_row_count_to_be_between":
        return f"rows per window {bounds}"
    if kind == "expect_column_values_to_be_unique":
        share = "" if rule.mostly >= 1 else f" (at least {rule.mostly:g} of them)"
        return f"{rule.column} values unique in each window{share}"
    what = {
        **STATISTIC_TYPES,
        "expect_column_stdev_to_be_between": "standard deviation",
        "expect_column_proportion_of_non_null_values_to_be_between": "share of non-null values",
        "expect_column_proportion_of_unique_values_to_be_between": "share of unique values",
        "expect_column_unique_value_count_to_be_between": "number of distinct values",
    }[kind]
    return f"{what} of {rule.column} {bounds}"


def window_rules(
    rules: Iterable[Rule],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str] = (),
    fields: Sequence[str] | None = None,
    origin: str,
) -> list[Rule]:
    """The suite's window expectations; a ConfigError names every one driftline cannot
    evaluate (its type, or a column that is not what it needs) and the supported types.
    ``fields`` (the reader schema's) is checked when given."""
    chosen, problems = [], []
    for rule in rules:
        if rule.row_level:
            continue
        where = f"expectations[{rule.index}] ({rule.expectation_type})"
        kind = rule.expectation_type
        if kind not in WINDOW_TYPES:
            problems.append(f"{where}: driftline cannot evaluate this type on a stream")
            continue
        problems += [f"{where}: {p}" for p in _kwarg_problems(rule)]
        if kind == "expect_table_row_count_to_be_between":
            pass
        elif not rule.column:
            problems.append(f"{where}: 'column' is required")
        elif kind in UNIQUENESS_TYPES:
            if fields is not None and rule.column not in fields:
                problems.append(
                    f"{where}: column {rule.column!r} is not a field; fields: {', '.join(fields)}"
                )
        elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
            if rule.column not in (*numeric, *categorical):
                features = ", ".join((*numeric, *categorical))
                problems.append(f"{where}: column {rule.column!r} is not a feature of the source, and null "
                                f"counts are kept for features only; features: {features}")  # fmt: skip
        elif rule.column not in numeric:
            problems.append(
                f"{where}: column {rule.column!r} is not a numeric feature of the source, and the window "
                f"statistics exist for those only; numeric features: {', '.join(numeric) or 'none'}"
            )
        chosen.append(rule)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise ConfigError(f"{origin}: {len(problems)} expectation(s) cannot be evaluated:\n{listed}\n"
                          f"  ({supported_text()})")  # fmt: skip
    return chosen


def _kwarg_problems(rule: Rule) -> list[str]:
    out = []
    unknown = sorted(set(rule.kwargs) - _KWARGS - {"row_condition", "condition_parser"})
    if unknown:
        out.append(f"unknown kwarg(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(_KWARGS))}")
    if rule.kwargs.get("row_condition") not in (None, ""):
        out.append("'row_condition' (conditional expectations) is not supported on a stream")
    for key in ("min_value", "max_value"):
        value = rule.kwargs.get(key)
        if isinstance(value, Mapping):
            out.append(f"{key!r} is a suite parameter ({value!r}); window expectations need literal values")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            out.append(f"{key!r} must be a number or null, got {value!r}")
    if rule.expectation_type in _BOUNDED and rule.min_value is None and rule.max_value is None:
        out.append("give 'min_value', 'max_value' or both; both are missing or null")
    return out


def evaluate(rule: Rule, facts: WindowFacts) -> WindowResult:
    """Judge ``rule`` on one window (see the module notes for each type's observed value)."""
    kind = rule.expectation_type
    column = facts.columns.get(rule.column or "", ColumnFacts())
    if kind == "expect_column_values_to_be_unique":
        repeated = column.repeated or 0
        share = None if column.non_null == 0 else repeated / column.non_null
        success = column.non_null == 0 or (column.non_null - repeated) / column.non_null >= rule.mostly
        return WindowResult(rule, success, share, facts.rows, repeated)
    if kind == "expect_table_row_count_to_be_between":
        observed: float | None = float(facts.rows)
    elif kind in STATISTIC_TYPES:
        observed = getattr(column, STATISTIC_TYPES[kind])
    elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
        observed = column.non_null / facts.rows if facts.rows else None
    elif kind == "expect_column_proportion_of_unique_values_to_be_between":
        observed = (column.distinct or 0) / column.non_null if column.non_null else 0.0  # GX: 0
    elif kind == "expect_column_unique_value_count_to_be_between":
        observed = float(column.distinct or 0)
    else:
        raise ValueError(f"{kind} is not a window expectation; {supported_text()}")
    return WindowResult(rule, _between(observed, rule), observed, facts.rows)


def _between(value: float | None, rule: Rule) -> bool:
    if value is None or math.isnan(value):
        return False
    low, high = rule.min_value, rule.max_value
    if low is not None and (value <= low if rule.strict_min else value < low):
        return False
    return not (high is not None and (value >= high if rule.strict_max else value > high))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


__all__ = ["WINDOW_TYPES", "ColumnFacts", "WindowFacts", "WindowResult", "evaluate", "supported_text",
           "window_rules"]  # fmt: skip
