"""Ingest: read records from files, validate them against the source's Avro schema,
produce the valid ones framed to the source topic and the rest to its dead-letter topic.

``driftline.ingest.readers`` is pure (files to records); ``driftline.ingest.run`` is
the Kafka side and is imported explicitly so that readers stay cheap to import.
"""
