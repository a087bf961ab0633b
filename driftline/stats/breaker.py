"""A circuit breaker per source: a window full of dead letters is degraded, not drifted.

When a large share of a source's records in a window were dead-lettered (undecodable,
or breaking the row rules), the valid rest is a biased sample: drift scored on it
would page for a broken producer as if the data had drifted. So each closed window's
dead-letter rate, ``dead / (dead + valid)``, goes through a breaker:

``closed``  drift verdicts as usual. A window whose rate is at least ``open_rate``
            *opens* it.
``open``    every judged verdict of the window is ``degraded`` (not ``drifted``,
            ``elevated`` or ``clear``), and the alert policy skips it as it skips an
            insufficient window: it neither fires nor resolves an alert. The breaker
            *closes* after ``close_after`` consecutive windows with a rate below
            ``close_rate`` (hysteresis: a rate hovering at ``open_rate`` does not flap);
            the window that closes it is scored as usual.

A decode failure carries no event time, so it counts in the window of its Kafka
timestamp; a rule failure in the window of its event time.

>>> policy = BreakerPolicy(open_rate=0.2, close_rate=0.1, close_after=2)
>>> state = BreakerState()
>>> [(state.observe(policy, w, dead, 100 - dead), state.open) for w, dead in
...  [("w1", 5), ("w2", 30), ("w3", 15), ("w4", 5), ("w5", 4), ("w6", 25)]]
[(None, False), ('opened', True), (None, True), (None, True), ('closed', False), ('opened', True)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class BreakerPolicy:
    """Thresholds of the breaker (``[drift]`` ``breaker_*`` settings)."""

    open_rate: float = 0.2
    close_rate: float = 0.1
    close_after: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.close_rate <= self.open_rate <= 1:
            raise ValueError(f"need 0 < close_rate ({self.close_rate}) <= open_rate ({self.open_rate}) <= 1")


@dataclass
class BreakerState:
    """Where one source's breaker stands; round-trips through dicts (the commit record)."""

    open: bool = False
    since: str | None = None  # the window that opened it
    calm: int = 0  # consecutive windows below close_rate while open
    last_rate: float | None = None
    degraded_windows: int = 0  # windows degraded so far

    def observe(self, policy: BreakerPolicy, window: str, dead: int, valid: int) -> str | None:
        """Feed a closed window's counts; return ``"opened"``, ``"closed"`` or ``None``.
        Afterwards :attr:`open` says whether this window is degraded."""
        total = dead + valid
        rate = dead / total if total else 0.0
        self.last_rate = rate
        event = None
        if not self.open:
            if total and rate >= policy.open_rate:
                self.open, self.since, self.calm, event = True, window, 0, "opened"
        else:
            self.calm = self.calm + 1 if rate < policy.close_rate else 0
            if self.calm >= policy.close_after:
                self.open, self.since, self.calm, event = False, None, 0, "closed"
        if self.open:
            self.degraded_windows += 1
        return event

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BreakerState:
        return cls(**data) if data else cls()


__all__ = ["BreakerPolicy", "BreakerState"]
