"""Seeded signal generator with drift injection, late records and corrupt records.

Everything is a pure function of the seed: the same arguments give the same records,
so tests and the demo know the truth they check against (which records are corrupt,
from which index a feature drifts).

Drift kinds (from record index ``start`` on):

``mean_shift``       numeric: add ``magnitude`` standard deviations
``variance_change``  numeric: scale deviations from the mean by ``magnitude``
``new_category``     categorical: a fraction ``magnitude`` of values becomes ``category``
``null_rate``        any nullable field: a fraction ``magnitude`` of values becomes null

Corruption kinds for files (each corrupt record is one of them, chosen uniformly):
``not_parseable``, ``missing_field``, ``wrong_type``, ``out_of_range``. Wire-level
kinds, for frames produced straight to Kafka: ``wrong_schema_id``, ``truncated``,
``not_framed`` (see :func:`corrupt_frame`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from driftline.demo.sources import (
    SOURCES,
    BoolField,
    CategoricalField,
    IdField,
    NumericField,
    SourceModel,
    source_model,
)

DriftKind = Literal["mean_shift", "variance_change", "new_category", "null_rate"]
FILE_CORRUPTIONS = ("not_parseable", "missing_field", "wrong_type", "out_of_range")
FRAME_CORRUPTIONS = ("wrong_schema_id", "truncated", "not_framed")
DEFAULT_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

#: The reason code each corruption kind must produce downstream.
EXPECTED_REASON = {
    "not_parseable": "NOT_PARSEABLE",
    "missing_field": "MISSING_FIELD",
    "wrong_type": "TYPE_MISMATCH",
    "out_of_range": "OUT_OF_RANGE",
    "wrong_schema_id": "UNKNOWN_SCHEMA",
    "truncated": "DECODE_FAILED",
    "not_framed": "NOT_FRAMED",
}


@dataclass(frozen=True)
class Drift:
    kind: DriftKind
    feature: str
    start: int
    magnitude: float = 1.0
    category: str | None = None

    def __post_init__(self) -> None:
        kinds = ("mean_shift", "variance_change", "new_category", "null_rate")
        if self.kind not in kinds:
            raise ValueError(f"drift kind {self.kind!r} is not one of {kinds}")
        if self.kind == "new_category" and not self.category:
            raise ValueError("a new_category drift needs category=")


@dataclass(frozen=True)
class Corruption:
    rate: float
    kinds: tuple[str, ...] = FILE_CORRUPTIONS

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"corruption rate must be in [0, 1], got {self.rate}")
        unknown = set(self.kinds) - set(FILE_CORRUPTIONS)
        if unknown or not self.kinds:
            raise ValueError(
                f"corruption kinds {sorted(unknown) or '(none)'} are not file corruptions; "
                f"valid: {', '.join(FILE_CORRUPTIONS)}"
            )


@dataclass(frozen=True)
class GeneratedRecord:
    """One record and the truth about it: ``kind`` is ``valid``, ``late`` or a corruption.

    ``value`` is the record as a dict (``None`` for ``not_parseable``, whose raw
    ``text`` is set instead).
    """

    index: int
    kind: str
    value: dict[str, Any] | None
    text: str | None = None


@dataclass
class SignalGenerator:
    """Generates records for one demo source.

    Parameters
    ----------
    source:
        ``payments``, ``sensors`` or ``clickstream``.
    seed:
        Everything random derives from it.
    start, interval:
        Record ``i`` has event time ``start + i * interval`` plus up to one interval
        of jitter, so event time advances at a known rate.
    drifts, corruption, late_rate, late_by:
        What to inject; late records are ``late_by`` behind the stream's event time.
    exclude_fields:
        Fields to leave out (e.g. ``("channel",)`` for payments schema v1).

    Examples
    --------
    >>> gen = SignalGenerator("sensors", seed=7)
    >>> [r.kind for r in gen.records(3)]
    ['valid', 'valid', 'valid']
    >>> sorted(gen.records(1)[0].value)[:3]
    ['event_time', 'pressure_kpa', 'rpm']
    """

    source: str
    seed: int
    start: datetime = DEFAULT_START
    interval: timedelta = timedelta(milliseconds=100)
    drifts: tuple[Drift, ...] = ()
    corruption: Corruption | None = None
    late_rate: float = 0.0
    late_by: timedelta = timedelta(minutes=30)
    exclude_fields: tuple[str, ...] = ()
    model: SourceModel = field(init=False)

    def __post_init__(self) -> None:
        self.model = source_model(self.source)
        for drift in self.drifts:
            self.model.field(drift.feature)  # raises with the valid names

    def records(self, n: int, *, first_index: int = 0) -> list[GeneratedRecord]:
        """Records ``first_index .. first_index + n - 1`` (the same for the same index)."""
        rng = np.random.default_rng([self.seed, first_index])
        index = np.arange(first_index, first_index + n)
        columns = {spec.name: self._column(spec, rng, index) for spec in self.model.fields}
        event_times = self._event_times(rng, index)
        kinds = np.full(n, "valid", dtype=object)
        if self.late_rate:
            late = rng.random(n) < self.late_rate
            kinds[late] = "late"
            event_times = [
                t - self.late_by if is_late else t for t, is_late in zip(event_times, late, strict=True)
            ]
        if self.corruption is not None and self.corruption.rate:
            corrupt = rng.random(n) < self.corruption.rate
            choice = rng.integers(0, len(self.corruption.kinds), n)
            for position in np.flatnonzero(corrupt):
                kinds[position] = self.corruption.kinds[choice[position]]
        names = [s.name for s in self.model.fields if s.name not in self.exclude_fields]
        out = []
        for position in range(n):
            value = {name: columns[name][position] for name in names}
            value["event_time"] = event_times[position]
            out.append(self._finish(int(index[position]), str(kinds[position]), value))
        return out

    def _event_times(self, rng: np.random.Generator, index: np.ndarray) -> list[datetime]:
        step_ms = self.interval / timedelta(milliseconds=1)
        offsets = index * step_ms + rng.random(len(index)) * step_ms
        return [self.start + timedelta(milliseconds=int(ms)) for ms in offsets]

    def _drifts_for(self, name: str) -> list[Drift]:
        return [d for d in self.drifts if d.feature == name]

    def _column(self, spec, rng: np.random.Generator, index: np.ndarray) -> list[Any]:
        n = len(index)
        if isinstance(spec, NumericField):
            values = spec.sample(rng, n).astype(float)
            for drift in self._drifts_for(spec.name):
                hit = index >= drift.start
                if drift.kind == "mean_shift":
                    values = np.where(hit, values + drift.magnitude * spec.std, values)
                elif drift.kind == "variance_change":
                    values = np.where(hit, spec.mean + (values - spec.mean) * drift.magnitude, values)
            if spec.integer:
                column: list[Any] = [int(round(v)) for v in values]
            elif spec.decimals is not None:
                column = [round(float(v), spec.decimals) for v in values]
            else:
                column = values.tolist()
        elif isinstance(spec, CategoricalField):
            picks = rng.choice(len(spec.categories), size=n, p=np.asarray(spec.weights) / sum(spec.weights))
            column = [spec.categories[p] for p in picks]
            for drift in self._drifts_for(spec.name):
                if drift.kind == "new_category":
                    hit = (index >= drift.start) & (rng.random(n) < drift.magnitude)
                    column = [drift.category if h else v for v, h in zip(column, hit, strict=True)]
        elif isinstance(spec, IdField) and spec.population == 0:
            column = [f"{spec.prefix}{self.seed}-{i:09d}" for i in index]
        elif isinstance(spec, IdField):
            ranks = np.minimum(rng.zipf(1.3, n), spec.population) - 1
            scrambled = (ranks * 2654435761 + 12345) % spec.population
            column = [f"{spec.prefix}{v:06d}" for v in scrambled]
        elif isinstance(spec, BoolField):
            column = (rng.random(n) < spec.p_true).tolist()
        else:  # pragma: no cover - the models only use the four kinds above
            raise TypeError(spec)
        null_rate = np.full(n, getattr(spec, "null_rate", 0.0))
        for drift in self._drifts_for(spec.name):
            if drift.kind == "null_rate":
                null_rate = np.where(index >= drift.start, drift.magnitude, null_rate)
        if null_rate.any():
            nulls = rng.random(n) < null_rate
            column = [None if is_null else v for v, is_null in zip(column, nulls, strict=True)]
        return column

    def _finish(self, index: int, kind: str, value: dict[str, Any]) -> GeneratedRecord:
        model = self.model
        if kind == "not_parseable":
            text = json.dumps(_jsonable(value))
            return GeneratedRecord(index, kind, None, text[: len(text) // 2])
        if kind == "missing_field":
            value.pop(model.missing_target)
        elif kind == "wrong_type":
            value[model.wrong_type_target] = "n/a"
        elif kind == "out_of_range":
            value[model.range_target] = 2**35 + index
        return GeneratedRecord(index, kind, value)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return {k: iso_millis(v) if isinstance(v, datetime) else v for k, v in value.items()}


def iso_millis(moment: datetime) -> str:
    """``2026-01-05T08:00:00.123Z``: ISO-8601 UTC with milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def corrupt_frame(kind: str, valid_frame: bytes, rng: np.random.Generator) -> bytes:
    """Damage a valid Confluent-framed record the way ``kind`` says.

    ``wrong_schema_id`` keeps the body but names id 0x7FFFFFFF, which none of the
    shipped schemas hashes to (a test checks it); ``truncated`` cuts the body;
    ``not_framed`` replaces the magic byte.
    """
    if kind == "wrong_schema_id":
        return b"\x00\x7f\xff\xff\xff" + valid_frame[5:]
    if kind == "truncated":
        body = valid_frame[5:]
        return valid_frame[:5] + body[: int(rng.integers(0, max(1, len(body) // 2)))]
    if kind == "not_framed":
        return b"\x7b" + valid_frame[1:]
    raise ValueError(f"frame corruption {kind!r} is not one of {FRAME_CORRUPTIONS}")


def generator_for(config, source: str, **kwargs) -> tuple[SignalGenerator, list[str]]:
    """A generator for a pipeline source and the writer schema's field names.

    The source's schema subject picks the model; fields the schema version does not
    have are left out, so the output validates against exactly that version.
    """
    from driftline.avro.registry import FileSchemaRegistry
    from driftline.errors import ConfigError

    source_config = config.source(source)
    if source_config.subject not in SOURCES:
        raise ConfigError(
            f"sources.{source}.subject: no generator for subject {source_config.subject!r}; "
            f"generators exist for: {', '.join(SOURCES)}"
        )
    schema = FileSchemaRegistry(config.path(config.schemas_dir)).get(
        source_config.subject, source_config.schema_version
    )
    model_fields = [f.name for f in SOURCES[source_config.subject].fields]
    excluded = tuple(name for name in model_fields if name not in schema.field_names)
    generator = SignalGenerator(source_config.subject, exclude_fields=excluded, **kwargs)
    return generator, schema.field_names
