"""Load a Great Expectations 1.x expectation suite file into driftline's row rules.

This is the only module that imports ``great_expectations``: the suite is checked by GE
itself (the same deserialisation GE's own expectations store uses, then one expectation
object built per entry), so a suite GE would refuse is refused here with GE's message.
Then the pure :func:`driftline.quality.rules.parse_suite` turns it into
:class:`~driftline.quality.rules.Rule` values, adding driftline's own checks (supported
row-level types, literal bounds, ``min_value <= max_value`` ...).

Importing great_expectations takes a few seconds, so it happens on the first load only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError
from driftline.quality.rules import Rule, parse_suite, supported_types_text

logger = logging.getLogger(__name__)


def load_expectation_suite(path: Path | str, *, with_great_expectations: bool = True) -> list[Rule]:
    """Read, validate (with Great Expectations) and parse the suite at ``path``.

    Parameters
    ----------
    path:
        A JSON file as GE 1.x writes it (``ExpectationSuite.to_json_dict()``, or a file
        data context's ``expectations/<name>.json``).
    with_great_expectations:
        ``False`` skips GE's own validation (importing GE takes seconds): the pipeline
        loader does that for every CLI command, and the job validates with GE when it starts.

    Returns
    -------
    list of Rule
        Every expectation in suite order; ``row_level`` tells the ones that route rows.

    Raises
    ------
    ConfigError
        The file is missing or not JSON, GE refuses the suite (its message is kept and
        the GE exception chained), or driftline cannot use it; the message names the file,
        the expectation's index and type, and the valid options.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if with_great_expectations:
        validate_with_great_expectations(document, origin=str(path))
    rules = parse_suite(document, origin=str(path))
    logger.debug("suite=%s rules=%d row_level=%d", path, len(rules), sum(rule.row_level for rule in rules))
    return rules


def validate_with_great_expectations(document: Any, *, origin: str) -> None:
    """Build a real ``great_expectations.ExpectationSuite`` from ``document`` or raise ConfigError.

    ``ExpectationSuite(...)`` logs and drops an expectation it cannot build instead of
    raising, so each entry is first turned into its GE expectation class on its own, which
    raises GE's error for that entry (unknown type, missing or extra kwargs, values of the
    wrong type, ``mostly`` outside [0, 1] ...).
    """
    from great_expectations.core.expectation_suite import ExpectationSuite, expectationSuiteSchema
    from great_expectations.exceptions import GreatExpectationsError
    from marshmallow import ValidationError as SchemaValidationError  # GE's serialisation layer

    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: an expectation suite is a JSON object, got {type(document).__name__}")
    try:
        loaded = expectationSuiteSchema.load(document)
    except SchemaValidationError as exc:
        raise ConfigError(
            f"{origin}: Great Expectations does not read it as an expectation suite: {exc.messages}"
        ) from exc
    for index, configuration in enumerate(loaded.get("expectations") or []):
        try:
            configuration.to_domain_obj()
        except (GreatExpectationsError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"{origin}: expectations[{index}] ({configuration.type}): Great Expectations refuses it: "
                f"{_one_line(exc)}; {supported_types_text()}"
            ) from exc
    try:
        suite = ExpectationSuite(**loaded)
    except (GreatExpectationsError, ValueError, TypeError) as exc:
        raise ConfigError(f"{origin}: Great Expectations refuses the suite: {_one_line(exc)}") from exc
    if len(suite.expectations) != len(loaded.get("expectations") or []):
        raise ConfigError(f"{origin}: Great Expectations dropped expectations while building the suite")


def _one_line(exc: BaseException) -> str:
    return " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
