"""Prometheus metrics of the quality job (pure prometheus-client; no Spark, no Kafka)."""

from driftline.metrics.exporter import Exporter, serve
from driftline.metrics.pipeline import BatchCounts, DriftObservation, PipelineMetrics

__all__ = ["BatchCounts", "DriftObservation", "Exporter", "PipelineMetrics", "serve"]
