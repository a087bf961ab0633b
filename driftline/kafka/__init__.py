"""The Kafka edge: Avro schemas and wire framing, registry, producer/admin helpers,
dead-letter records and the embedded broker.

Submodules are imported explicitly (``from driftline.kafka.codec import ...``); this
package's ``__init__`` imports nothing so that the Avro pieces do not pull in
confluent-kafka.
"""
