"""Errors as data: every record check returns a :class:`Valid` or an :class:`Invalid`.

An ``Invalid`` carries the untouched original bytes, so that whatever rejected the
record, the dead-letter side can keep it whole and a fix can replay it.

>>> bad = Invalid(ReasonCode.TYPE_MISMATCH, "field 'amount': expected double, got 'abc'",
...               raw=b'{"amount": "abc"}', field="amount")
>>> bad.stage, bad.ok
(<Stage.INGEST: 'ingest'>, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline.quality.reasons import ReasonCode, Stage


@dataclass(frozen=True, slots=True)
class Valid:
    """A record that passed: ``value`` is the checked (and possibly converted) record."""

    value: Any
    raw: bytes = b""

    ok = True


@dataclass(frozen=True, slots=True)
class Invalid:
    """A rejected record: why (stable ``reason``), a human ``detail``, and the raw bytes."""

    reason: ReasonCode
    detail: str
    raw: bytes
    field: str | None = None

    ok = False

    @property
    def stage(self) -> Stage:
        return self.reason.stage


Outcome = Valid | Invalid
