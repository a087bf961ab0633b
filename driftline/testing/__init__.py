"""Doubles and strategies for tests of driftline and of pipelines built on it.

- :mod:`~driftline.testing.strategies`: hypothesis strategies for records of an
  Avro schema;
- :mod:`~driftline.testing.schema_registry`: an in-process HTTP double of the
  Confluent Schema Registry (register, look up; basic auth and forced failures);
- :mod:`~driftline.testing.live`: a producer thread and a streaming job in a
  thread, for tests that watch the job while records arrive;
- :mod:`~driftline.testing.mutations`: seeded hostile payloads (mutated JSON lines
  for ingest, mutated Confluent frames for the job) for the fuzz tests.

Seeded signal data lives in :mod:`driftline.demo`. No production module imports
this package (a test checks it).
"""
