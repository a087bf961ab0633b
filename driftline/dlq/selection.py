"""Choosing dead letters (by reason, stage, time and offsets) and summarising them.

Pure: the dead letters come in as :class:`StoredLetter` values (one record of a
dead-letter topic, with its place on that topic); :mod:`driftline.dlq.replay` reads
them from Kafka.

Offsets name places on the *dead-letter* topic (``PARTITION:FIRST-LAST``, both
inclusive, or ``PARTITION:OFFSET``), as ``driftline dlq inspect`` lists them. Times are
when a record was dead-lettered (the ``driftline.error.time`` header), ISO-8601; a
time without a zone is UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftline.errors import ConfigError
from driftline.kafka.dead_letter import DeadLetter
from driftline.quality.reasons import ReasonCode, Stage

_OFFSETS = re.compile(r"^(\d+):(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter and where it is on its dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter
    key: bytes | None = None

    @property
    def place(self) -> str:
        """``PARTITION:OFFSET`` on the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def cut(self) -> bool:
        """Whether the value holds only the first bytes of the original (see DeadLetter.fitted)."""
        return self.letter.original_size is not None


@dataclass(frozen=True)
class Selection:
    """Which dead letters: every condition given must hold (an empty one holds for all)."""

    reasons: frozenset[ReasonCode] = frozenset()
    stages: frozenset[Stage] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    offsets: tuple[tuple[int, int, int], ...] = ()  # (partition, first, last), inclusive

    @classmethod
    def parse(
        cls,
        *,
        reasons: Sequence[str] = (),
        stages: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        offsets: Sequence[str] = (),
    ) -> Selection:
        """From command-line values; a ConfigError names the option, the value and the valid ones."""
        chosen_reasons = frozenset(_enum(ReasonCode, r, "--reason") for r in reasons)
        chosen_stages = frozenset(_enum(Stage, s, "--stage") for s in stages)
        ranges = []
        for text in offsets:
            match = _OFFSETS.match(text.strip())
            if match is None:
                raise ConfigError(f"--offsets: expected PARTITION:FIRST-LAST or PARTITION:OFFSET "
                                  f"(dead-letter topic offsets, e.g. 0:120-180), got {text!r}")  # fmt: skip
            partition, first = int(match[1]), int(match[2])
            last = int(match[3]) if match[3] is not None else first
            if last < first:
                raise ConfigError(f"--offsets: {text!r} ends before it starts")
            ranges.append((partition, first, last))
        low, high = parse_time(since, "--since"), parse_time(until, "--until")
        if low is not None and high is not None and high < low:
            raise ConfigError(f"--until ({until}) is before --since ({since})")
        return cls(chosen_reasons, chosen_stages, low, high, tuple(ranges))

    def matches(self, stored: StoredLetter) -> bool:
        letter = stored.letter
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.stages and letter.stage not in self.stages:
            return False
        if self.since is not None and letter.time < self.since:
            return False
        if self.until is not None and letter.time > self.until:
            return False
        return not self.offsets or any(
            stored.partition == p and first <= stored.offset <= last for p, first, last in self.offsets
        )

    def describe(self) -> str:
        parts = []
        if self.reasons:
            parts.append("reason " + ",".join(sorted(self.reasons)))
        if self.stages:
            parts.append("stage " + ",".join(sorted(self.stages)))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"until {self.until.isoformat()}")
        if self.offsets:
            parts.append("offsets " + ",".join(f"{p}:{a}-{b}" for p, a, b in self.offsets))
        return "; ".join(parts) or "every dead letter"

    def as_dict(self) -> dict[str, Any]:
        return {
            "reasons": sorted(self.reasons), "stages": sorted(self.stages),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "offsets": [f"{p}:{a}-{b}" for p, a, b in self.offsets],
        }  # fmt: skip


def _enum(kind, value: str, option: str):
    try:
        return kind(value.strip().upper() if kind is ReasonCode else value.strip().lower())
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise ConfigError(f"{option}: {value!r} is not one; valid values: {valid}") from None


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO-8601 time from option ``option`` (UTC when it has no zone); a ConfigError otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{option}: expected an ISO-8601 time such as 2026-01-05T08:00:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class Group:
    """The dead letters of one (reason, stage): how many, when, where, and how many replayed."""

    reason: str
    stage: str
    count: int = 0
    replayed: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    offsets: dict[int, list[int]] = field(default_factory=dict)  # partition -> [first, last]

    @property
    def outstanding(self) -> int:
        return self.count - self.replayed

    def add(self, stored: StoredLetter, replayed: bool) -> None:
        self.count += 1
        self.replayed += int(replayed)
        moment = stored.letter.time
        self.first_time = moment if self.first_time is None else min(self.first_time, moment)
        self.last_time = moment if self.last_time is None else max(self.last_time, moment)
        span = self.offsets.setdefault(stored.partition, [stored.offset, stored.offset])
        span[0], span[1] = min(span[0], stored.offset), max(span[1], stored.offset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason, "stage": self.stage, "count": self.count, "replayed": self.replayed,
            "outstanding": self.outstanding,
            "first_time": self.first_time.isoformat() if self.first_time else None,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "offsets": {str(p): f"{a}-{b}" for p, (a, b) in sorted(self.offsets.items())},
        }  # fmt: skip


def summarize(letters: Iterable[StoredLetter], replayed: Mapping[str, Any]) -> list[Group]:
    """Groups by (reason, stage), largest first; ``replayed`` holds the places
    (``PARTITION:OFFSET``) already replayed."""
    groups: dict[tuple[str, str], Group] = {}
    for stored in letters:
        key = (stored.letter.reason.value, stored.letter.stage.value)
        groups.setdefault(key, Group(*key)).add(stored, stored.place in replayed)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


__all__ = ["Group", "Selection", "StoredLetter", "parse_time", "summarize"]
