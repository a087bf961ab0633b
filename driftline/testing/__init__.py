"""Seeded signal generators and helpers that users can reuse to test their pipelines.

>>> from driftline.testing import SignalGenerator, Drift
>>> gen = SignalGenerator("payments", seed=1, drifts=(Drift("mean_shift", "amount", start=100),))
>>> len(gen.records(10))
10
"""

from driftline.testing.generator import (
    EXPECTED_REASON,
    FILE_CORRUPTIONS,
    FRAME_CORRUPTIONS,
    Corruption,
    Drift,
    GeneratedRecord,
    SignalGenerator,
    corrupt_frame,
    iso_millis,
)
from driftline.testing.sources import SOURCES, source_model
from driftline.testing.writers import PARQUET_CORRUPTIONS, write_records

__all__ = [
    "EXPECTED_REASON",
    "FILE_CORRUPTIONS",
    "FRAME_CORRUPTIONS",
    "PARQUET_CORRUPTIONS",
    "SOURCES",
    "Corruption",
    "Drift",
    "GeneratedRecord",
    "SignalGenerator",
    "corrupt_frame",
    "generator_for",
    "iso_millis",
    "source_model",
    "write_records",
]


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
