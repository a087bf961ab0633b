"""The demo's own package: seeded signal data and the local Prometheus stack.

``driftline demo`` and ``driftline generate`` run on this; so can a user who wants
realistic, seeded records for their own pipeline:

>>> from driftline.demo import SignalGenerator, Drift
>>> gen = SignalGenerator("payments", seed=1, drifts=(Drift("mean_shift", "amount", start=100),))
>>> len(gen.records(10))
10

Modules: :mod:`~driftline.demo.sources` (the per-source field models),
:mod:`~driftline.demo.generator` (records, drifts and corruptions),
:mod:`~driftline.demo.writers` (records as NDJSON / CSV / Parquet files),
:mod:`~driftline.demo.promstack` (real Prometheus + Alertmanager on 127.0.0.1),
:mod:`~driftline.demo.alerting` and :mod:`~driftline.demo.run` (the demo itself).
"""

from driftline.demo.generator import (
    EXPECTED_REASON,
    FILE_CORRUPTIONS,
    FRAME_CORRUPTIONS,
    Corruption,
    Drift,
    GeneratedRecord,
    SignalGenerator,
    corrupt_frame,
    generator_for,
    iso_millis,
)
from driftline.demo.sources import SOURCES, source_model
from driftline.demo.writers import PARQUET_CORRUPTIONS, write_records

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
