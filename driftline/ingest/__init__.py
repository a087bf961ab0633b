"""Ingest: read records from files, validate them against the source's Avro schema,
produce the valid ones framed to the source topic and the rest to its dead-letter topic.
"""

from driftline.ingest.readers import InputFormat, InputRecord, detect_format, read_records
from driftline.ingest.run import IngestSummary, ingest_file

__all__ = [
    "IngestSummary",
    "InputFormat",
    "InputRecord",
    "detect_format",
    "ingest_file",
    "read_records",
]
