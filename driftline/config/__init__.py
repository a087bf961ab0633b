"""Typed, validated pipeline configuration (``pipelines/*.toml``).

``load_pipeline(path)`` is the one entry point: it parses the TOML, validates it into
frozen models and checks it against the Avro schemas it names. Every error is a
:class:`~driftline.errors.ConfigError` naming the key, what was expected and the
valid options.
"""

from driftline.config.durations import Duration, parse_duration
from driftline.config.loader import load_pipeline, pipeline_from_dict
from driftline.config.pipeline import (
    DriftConfig,
    FeatureConfig,
    KafkaConfig,
    MetricsConfig,
    PipelineConfig,
    ReferenceConfig,
    SourceConfig,
    WindowConfig,
)

__all__ = [
    "DriftConfig",
    "MetricsConfig",
    "Duration",
    "FeatureConfig",
    "KafkaConfig",
    "PipelineConfig",
    "ReferenceConfig",
    "SourceConfig",
    "WindowConfig",
    "load_pipeline",
    "parse_duration",
    "pipeline_from_dict",
]
