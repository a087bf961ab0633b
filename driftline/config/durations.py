"""Durations written the way Spark writes intervals: ``"5 minutes"``, ``"30 seconds"``.

>>> parse_duration("5 minutes").seconds
300.0
>>> parse_duration("1.5h").spark
'5400 seconds'
>>> parse_duration("soon")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: 'soon' is not a duration; write a number and a unit, e.g. ... (units: ms, s, m, h, d)

Zero is a duration (a watermark of ``"0 seconds"`` allows no late data); a negative one
is refused as such. Settings that need a span of time (a window's size) also check
:func:`require_positive`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_PATTERN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_EXAMPLE = "write a number and a unit, e.g. '30 seconds', '5 minutes' (units: ms, s, m, h, d)"


@dataclass(frozen=True, order=True)
class Duration:
    """A span of time of zero or more seconds; ``spark`` renders it for Spark's interval parser."""

    seconds: float

    @property
    def milliseconds(self) -> int:
        return round(self.seconds * 1000)

    @property
    def spark(self) -> str:
        if self.seconds.is_integer():
            return f"{int(self.seconds)} seconds"
        return f"{self.milliseconds} milliseconds"

    def __str__(self) -> str:
        return self.spark


def parse_duration(value: object) -> Duration:
    """Parse ``"<number> <unit>"`` (or a number of seconds) into a :class:`Duration` of
    zero or more seconds; a negative one gets its own message."""
    if isinstance(value, Duration):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value) if math.isfinite(value) else None
        except OverflowError:  # an int beyond any float
            seconds = None
    elif isinstance(value, str) and (match := _PATTERN.match(value.lower())) and match.group(2) in _UNITS:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None:
        raise ValueError(f"{value!r} is not a duration; {_EXAMPLE}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; a duration is zero or more: {_EXAMPLE}")
    return Duration(seconds + 0.0)


def require_whole_seconds(duration: Duration) -> Duration:
    """``duration`` itself, or a ValueError when it is not a whole number of seconds (the
    job's windows, watermark and checks count in seconds: ``500 ms`` would become 0)."""
    if not duration.seconds.is_integer():
        raise ValueError("must be a whole number of seconds: windows, the watermark and event-time checks "
                         "count in seconds")  # fmt: skip
    return duration


def require_positive(duration: Duration) -> Duration:
    """``duration`` itself, or a ValueError when it is zero (a setting that needs a span)."""
    if duration.seconds <= 0:
        raise ValueError("must be more than zero: this setting is a span of time")
    return duration
