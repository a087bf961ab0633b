"""Row rules as Spark SQL column expressions: which rule a row fails first, and why.

Everything here builds :class:`pyspark.sql.Column` expressions on the driver, once per
query; the expressions then run inside the JVM on the executors (no Python UDF, nothing
to pickle). Semantics follow Great Expectations 1.x on Spark (see
:mod:`driftline.quality.rules`): nulls only fail the two null rules, ``between`` bounds
are inclusive unless ``strict_min`` / ``strict_max``.

Regexes run through Spark's ``rlike``, i.e. Java's ``java.util.regex`` with ``find()``:
like Python's ``re.search`` a pattern matches anywhere unless anchored with ``^`` / ``$``.
Java's dialect differs from Python's ``re`` in places a suite written against pandas
may trip on: named groups are ``(?<name>...)`` (Python: ``(?P<name>...)``), ``\\d`` and
``\\w`` are ASCII-only (Python: Unicode), ``$`` also matches before a final ``\\r\\n``
(Python: only before a final ``\\n``), and Java adds ``\\p{Alpha}``-style classes,
``\\Q...\\E`` quoting and class intersections ``[a-z&&[^e]]``. GE itself passes the
regex to ``rlike`` on Spark, so a suite validated with GE's Spark engine behaves the
same here. :func:`check_regexes` compiles every pattern in the JVM up front, so a bad
one is a configuration error at start-up rather than a failed batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from driftline.errors import ConfigError
from driftline.quality.rules import Rule, format_values, row_rules

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Longest value text shown in a failure detail; longer values are cut with "...".
MAX_SHOWN_CHARS = 80


def violation(rule: Rule) -> Column:
    """True exactly when the row violates ``rule``; never null.

    Parameters
    ----------
    rule:
        A row-level rule (``rule.row_level``).

    Notes
    -----
    ============================  ================================================
    type                          violated when (null never violates, except *)
    ============================  ================================================
    not_null *                    the value is null
    null *                        the value is not null
    between                       NaN, ``< min`` (``<=`` if strict_min),
                                  ``> max`` (``>=`` if strict_max)
    in_set / not_in_set           not in / in ``value_set`` (Spark ``isin``)
    regex / not_regex             ``rlike`` is false / true
    length_between                ``length(value)`` (characters) outside the bounds
    ============================  ================================================
    """
    if not rule.row_level:
        raise ValueError(
            f"rule {rule.rule_id!r} ({rule.expectation_type}) is suite-level: it has no per-row violation"
        )
    column = F.col(_quoted(rule.column))
    short = rule.short_type
    if short == "not_null":
        failed = column.isNull()
    elif short == "null":
        failed = column.isNotNull()
    elif short == "between":
        failed = F.isnan(column) | ~_within(column, rule)
    elif short == "length_between":
        failed = ~_within(F.length(column), rule)
    elif short == "in_set":
        failed = ~column.isin(list(rule.value_set))
    elif short == "not_in_set":
        failed = column.isin(list(rule.value_set))
    elif short == "regex":
        failed = ~column.rlike(rule.regex)
    else:  # not_regex: parse_suite admits no other row-level type
        failed = column.rlike(rule.regex)
    return F.coalesce(failed, F.lit(False))


def first_failed_rule(rules: Sequence[Rule]) -> Column:
    """The ``rule_id`` of the first row-level rule the row violates (suite order), else null.

    Suite-level rules in ``rules`` are skipped.
    """
    return _first_match(rules, lambda rule: F.lit(rule.rule_id))


def failure_detail(rules: Sequence[Rule]) -> Column:
    """A human message for the first violated rule, else null.

    For example ``amount:between: amount=-5.0 is not between 0 and 100000`` or
    ``currency:in_set: currency="XYZ" is not in {"EUR", "USD", "GBP"}``. String values are
    quoted and cut after :data:`MAX_SHOWN_CHARS` characters; the text is built with Spark
    SQL string functions, per row, in the JVM.
    """
    return _first_match(rules, _detail)


def check_regexes(spark: SparkSession, rules: Sequence[Rule], *, origin: str) -> None:
    """Compile every regex rule's pattern with the JVM's regex engine; ConfigError on the first bad one.

    Runs on the driver, once, before a query starts (one tiny local job per regex rule).
    """
    for rule in row_rules(rules):
        if rule.regex is None:
            continue
        try:
            spark.range(1).select(F.lit("").rlike(rule.regex)).collect()
        except Exception as exc:  # the JVM's PatternSyntaxException arrives as a Py4J/Spark error
            text = str(exc)
            if "PatternSyntaxException" not in text and "INVALID_PARAMETER_VALUE.PATTERN" not in text:
                raise  # not the pattern's fault (the local job failed): not a configuration error
            first = text.strip().splitlines()[0]
            raise ConfigError(
                f"{origin}: expectations[{rule.index}] ({rule.expectation_type}): regex {rule.regex!r} "
                f"is not a valid Java regex (Spark rlike): {first}"
            ) from exc


def _first_match(rules: Sequence[Rule], value) -> Column:
    chosen = row_rules(rules)
    if not chosen:
        return F.lit(None).cast("string")
    case = F.when(violation(chosen[0]), value(chosen[0]))
    for rule in chosen[1:]:
        case = case.when(violation(rule), value(rule))
    return case


def _within(value: Column, rule: Rule) -> Column:
    conditions = []
    if rule.min_value is not None:
        low = F.lit(rule.min_value)
        conditions.append(value > low if rule.strict_min else value >= low)
    if rule.max_value is not None:
        high = F.lit(rule.max_value)
        conditions.append(value < high if rule.strict_max else value <= high)
    within = conditions[0]
    for condition in conditions[1:]:
        within = within & condition
    return within


def _detail(rule: Rule) -> Column:
    name = rule.column
    shown = _shown(F.col(_quoted(name)))
    prefix = f"{rule.rule_id}: {name}"
    short = rule.short_type
    if short == "not_null":
        return F.lit(f"{prefix} is null")
    if short == "length_between":
        length = F.length(F.col(_quoted(name))).cast("string")
        return F.concat(
            F.lit(f"{prefix}="), shown, F.lit(" has length "), length, F.lit(f", not {rule.bounds_text()}")
        )
    phrases = {
        "null": "is not null",
        "between": f"is not {rule.bounds_text()}",
        "in_set": f"is not in {format_values(rule.value_set)}",
        "not_in_set": f"is in the forbidden set {format_values(rule.value_set)}",
        "regex": f"does not match regex {rule.regex}",
        "not_regex": f"matches the forbidden regex {rule.regex}",
    }
    return F.concat(F.lit(f"{prefix}="), shown, F.lit(f" {phrases[short]}"))


def _shown(column: Column) -> Column:
    text = column.cast("string")
    cut = F.when(
        F.length(text) > MAX_SHOWN_CHARS, F.concat(F.substring(text, 1, MAX_SHOWN_CHARS), F.lit("..."))
    ).otherwise(text)
    # typeof() is constant per column, so Spark folds this CASE away at planning time.
    return F.when(F.typeof(column) == "string", F.concat(F.lit('"'), cut, F.lit('"'))).otherwise(cut)


def _quoted(name: str | None) -> str:
    """A column reference Spark will not parse as a nested field or expression."""
    return "`" + str(name).replace("`", "``") + "`"
