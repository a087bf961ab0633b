"""Load a pipeline TOML into :class:`PipelineConfig` and check it against its schemas.

Errors name the key the way it is written in the file (``sources.payments.event_time``),
what was expected, what was found, and the valid options.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from driftline.config.pipeline import PipelineConfig, SourceConfig
from driftline.errors import ConfigError, SchemaError

NUMERIC_AVRO = {"int", "long", "float", "double"}
CATEGORICAL_AVRO = {"string", "boolean", "int", "long", "enum"}
TIMESTAMP_LOGICAL = {"timestamp-millis", "timestamp-micros"}


def load_pipeline(path: Path | str, *, check_schemas: bool = True) -> PipelineConfig:
    """Read, validate and cross-check ``path``; relative paths resolve from its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"pipeline definition {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return pipeline_from_dict(data, base_dir=path.parent, origin=str(path), check_schemas=check_schemas)


def pipeline_from_dict(
    data: dict[str, Any],
    *,
    base_dir: Path | str = ".",
    origin: str = "pipeline",
    check_schemas: bool = True,
) -> PipelineConfig:
    try:
        config = PipelineConfig.model_validate({**data, "base_dir": Path(base_dir).resolve()})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    if check_schemas:
        check_against_schemas(config, origin)
    return config


def _describe(exc: ValidationError, origin: str) -> str:
    lines = [f"{origin}: {exc.error_count()} problem(s) in the pipeline definition:"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        kind = error["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys(PipelineConfig, error["loc"][:-1])
            lines.append(f"  {location}: unknown key; valid keys here: {', '.join(valid)}")
        elif kind == "missing":
            lines.append(f"  {location}: required key is missing")
        else:
            found = error.get("input")
            shown = f"; got {found!r}" if not isinstance(found, dict) else ""
            lines.append(f"  {location}: {error['msg']}{shown}")
    return "\n".join(lines)


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (skipping dict keys such as source names)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = _unwrap(field.annotation) if field is not None else None
        elif get_origin(current) is dict:
            current = _unwrap(get_args(current)[1])
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(k for k, f in current.model_fields.items() if not f.exclude)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not dict and len(args) == 1:
        return args[0]
    return annotation


def _avro_kind(avro_type: Any) -> tuple[str, str | None, bool]:
    """(base type, logical type, nullable) of a field's Avro type."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    nullable = "null" in branches
    non_null = [b for b in branches if b != "null"]
    if len(non_null) != 1:
        return "union", None, nullable
    only = non_null[0]
    if isinstance(only, dict):
        return only.get("type", "?"), only.get("logicalType"), nullable
    return only, None, nullable


def check_against_schemas(config: PipelineConfig, origin: str) -> None:
    """Every source's subject, version, event time, entity id and features exist and fit."""
    from driftline.avro.registry import FileSchemaRegistry

    schemas_dir = config.path(config.schemas_dir)
    try:
        registry = FileSchemaRegistry(schemas_dir)
    except SchemaError as exc:
        raise ConfigError(f"{origin}: schemas_dir: {exc}") from exc
    problems: list[str] = []
    topics: dict[str, str] = {}
    for name, source in config.sources.items():
        where = f"sources.{name}"
        try:
            schema = registry.get(source.subject, source.schema_version)
        except SchemaError as exc:
            key = "subject" if source.subject not in registry.subjects() else "schema_version"
            problems.append(f"  {where}.{key}: {exc}")
            continue
        problems.extend(_check_fields(where, source, schema))
        if source.expectations is not None:
            problems.extend(_check_expectations(where, config.path(source.expectations), schema, source))
        for topic in (config.topic(name), config.dead_letter_topic(name)):
            if topic in topics:
                problems.append(f"  {where}: topic {topic!r} is also used by source {topics[topic]!r}")
            topics[topic] = name
    if problems:
        raise ConfigError("\n".join([f"{origin}: the definition does not fit its schemas:", *problems]))


def _check_expectations(where: str, suite_path: Path, schema, source: SourceConfig) -> list[str]:
    """The suite exists, parses, its columns are reader-schema fields, and every suite-level
    expectation is one the job evaluates per window (GE itself validates the suite when the
    job starts: importing it costs seconds on every command)."""
    from driftline.expectations import load_expectation_suite
    from driftline.quality.rules import check_columns
    from driftline.quality.window_rules import window_rules

    key = f"{where}.expectations"
    if not suite_path.is_file():
        return [f"  {key}: expectation suite {suite_path} does not exist"]
    try:
        rules = load_expectation_suite(suite_path, with_great_expectations=False)
        fields = [f["name"] for f in schema.definition.get("fields", [])]
        origin = f"{suite_path} against {schema.subject} v{schema.version}"
        check_columns(rules, fields, origin=origin)
        window_rules(rules, numeric=source.numeric_features, categorical=source.categorical_features,
                     fields=fields, origin=origin)  # fmt: skip
    except ConfigError as exc:
        return [f"  {key}: " + str(exc).replace("\n", "\n    ")]
    return []


def _check_fields(where: str, source: SourceConfig, schema) -> list[str]:
    problems = []
    fields = {f["name"]: f for f in schema.definition.get("fields", [])}
    valid = ", ".join(fields)
    label = f"{schema.subject} v{schema.version}"

    def lookup(key: str, name: str) -> dict[str, Any] | None:
        if name not in fields:
            problems.append(f"  {where}.{key}: {name!r} is not a field of {label}; fields: {valid}")
            return None
        return fields[name]

    event_field = lookup("event_time", source.event_time)
    if event_field is not None:
        base, logical, _ = _avro_kind(event_field["type"])
        if logical not in TIMESTAMP_LOGICAL:
            problems.append(
                f"  {where}.event_time: field {source.event_time!r} is {base}"
                f"{'/' + logical if logical else ''}; expected a long with logicalType "
                f"timestamp-millis or timestamp-micros"
            )
    if source.entity_id is not None:
        lookup("entity_id", source.entity_id)
    for feature, spec in source.features.items():
        field = lookup(f"features.{feature}", feature)
        if field is None:
            continue
        base, logical, _ = _avro_kind(field["type"])
        allowed = NUMERIC_AVRO if spec.kind == "numeric" else CATEGORICAL_AVRO
        if base not in allowed or logical is not None:
            problems.append(
                f"  {where}.features.{feature}.kind: {spec.kind!r} needs an Avro type in "
                f"{sorted(allowed)}, but {feature!r} is {base}{'/' + logical if logical else ''}"
            )
    return problems
