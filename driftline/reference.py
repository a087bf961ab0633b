"""Reference profiles of a pipeline's sources: built from a file or a topic, found by version.

A source's profiles live at ``<[reference] path>/<source>/<version>.json``. The job
uses the pinned ``[reference] version`` or else the newest (versions default to the
creation time, ``YYYYMMDDTHHMMSSZ``, so the newest sorts last).

The reference is built from the records the pipeline would accept: a file is read and
validated exactly as ``driftline ingest`` does, a topic is decoded exactly as the job
does, and rejected records are counted (by reason) but not profiled.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from driftline.config import PipelineConfig
from driftline.errors import ConfigError
from driftline.quality.outcome import Outcome
from driftline.stats import ReferenceProfile

logger = logging.getLogger(__name__)


@dataclass
class BaselineSummary:
    """What ``driftline baseline`` did: the profile written and the records it used."""

    source: str
    version: str
    path: str
    read: int = 0
    used: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "version": self.version, "path": self.path, "read": self.read,
                "used": self.used, "rejected": dict(sorted(self.rejected.items()))}  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


def profile_dir(config: PipelineConfig, source: str) -> Path:
    return config.path(config.reference.path) / source


def find_profile(config: PipelineConfig, source: str) -> Path | None:
    """The profile the job uses for ``source``: the pinned version, else the newest, else None."""
    folder = profile_dir(config, source)
    pinned = config.reference.version
    if pinned:
        path = folder / f"{pinned}.json"
        if not path.exists():
            have = sorted(p.stem for p in folder.glob("*.json"))
            available = ", ".join(have) or "(none: run driftline baseline)"
            raise ConfigError(
                f"reference.version: no profile {pinned!r} for source {source!r} in {folder}; "
                f"available: {available}"
            )
        return path
    candidates = sorted(folder.glob("*.json"))
    return candidates[-1] if candidates else None


def load_reference(config: PipelineConfig, source: str) -> ReferenceProfile | None:
    """The source's reference profile, checked to cover its features (None if there is none)."""
    path = find_profile(config, source)
    if path is None:
        return None
    try:
        profile = ReferenceProfile.load(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    spec = config.source(source)
    for name, feature in spec.features.items():
        have = profile.features.get(name)
        if have is None or have.kind != feature.kind:
            found = f"kind {have.kind!r}" if have else "missing"
            raise ConfigError(
                f"sources.{source}.features.{name}: reference profile {path} does not match "
                f"(expected a {feature.kind} feature, {found}); rebuild it with driftline baseline"
            )
    return profile


def fit_profile(
    config: PipelineConfig, source: str, rows: Mapping[str, list[Any]], *, version: str | None, origin: str
) -> ReferenceProfile:
    spec = config.source(source)
    numeric, categorical = list(spec.numeric_features), list(spec.categorical_features)
    settings = config.reference
    try:
        return ReferenceProfile.fit(
            rows, numeric=numeric, categorical=categorical, grid=settings.grid, bins=settings.bins,
            max_categories=settings.max_categories, version=version,
            metadata={"pipeline": config.name, "source": source, "origin": origin},
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"cannot build a reference for {source!r} from {origin}: {exc}") from exc


def _collect(
    config: PipelineConfig, source: str, outcomes: Iterable[Outcome | None], summary: BaselineSummary
):
    """Feature columns of the valid outcomes (``None`` = filtered out, not counted)."""
    features = list(config.source(source).features)
    columns: dict[str, list[Any]] = {name: [] for name in features}
    for outcome in outcomes:
        if outcome is None:
            continue
        summary.read += 1
        if not outcome.ok:
            summary.rejected[outcome.reason.value] += 1
            continue
        summary.used += 1
        for name in features:
            columns[name].append(outcome.value.get(name))
    if summary.used == 0:
        raise ConfigError(f"no valid records of source {source!r} to build a reference from "
                          f"(read {summary.read}, rejected {dict(summary.rejected)})")  # fmt: skip
    return columns


def _save(config, source, rows, summary, *, version, origin) -> BaselineSummary:
    profile = fit_profile(config, source, rows, version=version, origin=origin)
    path = profile.save(profile_dir(config, source) / f"{profile.version}.json")
    summary.version, summary.path = profile.version, str(path)
    logger.info("baseline_written source=%s version=%s rows=%d path=%s", source, profile.version,
                summary.used, path)  # fmt: skip
    return summary


def baseline_from_file(
    config: PipelineConfig, source: str, path: Path | str, *, input_format: str | None = None,
    version: str | None = None,
) -> BaselineSummary:  # fmt: skip
    """Profile a file (CSV, JSON Lines or Parquet), validated as ``ingest`` validates it."""
    from driftline.avro.validation import RecordValidator
    from driftline.ingest.readers import detect_format, read_records
    from driftline.ingest.run import open_pipeline_registry
    from driftline.quality.outcome import Invalid
    from driftline.quality.reasons import ReasonCode

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--input: {path} does not exist")
    fmt = detect_format(path, input_format)
    spec = config.source(source)
    writer = open_pipeline_registry(config).get(spec.subject, spec.schema_version)
    validator = RecordValidator(writer, text=fmt.value == "csv")

    def outcomes():
        for record in read_records(path, fmt):
            if record.error is not None:
                yield Invalid(ReasonCode.NOT_PARSEABLE, record.error, raw=record.raw)
            else:
                yield validator.validate(record.value, raw=record.raw)

    summary = BaselineSummary(source, "", "")
    rows = _collect(config, source, outcomes(), summary)
    return _save(config, source, rows, summary, version=version, origin=str(path))


def baseline_from_topic(
    config: PipelineConfig,
    source: str,
    *,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
    version: str | None = None,
) -> BaselineSummary:
    """Profile what is already in the source's topic: event times in ``[start_time,
    end_time)`` and/or offsets in ``[start_offset, end_offset)`` of every partition."""
    from driftline.avro.codec import AvroDecoder
    from driftline.ingest.run import open_pipeline_registry
    from driftline.kafka.reading import read_topic

    spec = config.source(source)
    registry = open_pipeline_registry(config)
    decoder = AvroDecoder(registry, registry.get(spec.subject, spec.schema_version))
    topic = config.topic(source)
    messages = read_topic(config.kafka.bootstrap_servers, topic, settings=config.kafka.librdkafka("consumer"))

    def outcomes():
        for message in messages:
            offset = message.offset()
            if (start_offset is not None and offset < start_offset) or (
                end_offset is not None and offset >= end_offset
            ):
                yield None
                continue
            outcome = decoder.decode(message.value())
            if outcome.ok and (start_time or end_time):
                moment = outcome.value.get(spec.event_time)
                if (
                    moment is None
                    or (start_time and moment < start_time)
                    or (end_time and moment >= end_time)
                ):
                    yield None
                    continue
            yield outcome

    summary = BaselineSummary(source, "", "")
    rows = _collect(config, source, outcomes(), summary)
    window = f"{topic} time [{start_time}, {end_time}) offsets [{start_offset}, {end_offset})"
    return _save(config, source, rows, summary, version=version, origin=window)
