"""Avro serialisation: schemas and their registry, Confluent wire framing, encoding and
decoding, record validation and schema evolution checks.

Apart from Kafka I/O (``driftline.kafka``): nothing here opens a connection, and
confluent-kafka is imported only by the Confluent Schema Registry client, lazily.
Submodules are imported explicitly (``from driftline.avro.codec import ...``).
"""
