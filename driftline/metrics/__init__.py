"""Prometheus metrics of the quality job (pure prometheus-client; no Spark, no Kafka)."""

from driftline.metrics.exporter import Exporter, serve
from driftline.metrics.pipeline import AlertEvent, BatchCounts, DriftObservation, PipelineMetrics

__all__ = ["AlertEvent", "BatchCounts", "DriftObservation", "Exporter", "PipelineMetrics", "serve"]
