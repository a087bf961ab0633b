"""Kafka I/O: producer/consumer/admin helpers, transactional batches, dead-letter
records, librdkafka-to-Java settings and the embedded Apache Kafka broker.

Avro serialisation lives apart, in ``driftline.avro``. Submodules are imported
explicitly; this ``__init__`` imports nothing.
"""
