"""Confluent wire framing: magic byte 0, 4-byte big-endian schema id, Avro body.

>>> framed = frame(42, b"body")
>>> framed.hex()
'000000002a626f6479'
>>> unframe(framed)
(42, b'body')
>>> try:
...     unframe(b"\\x01abc")
... except FramingError as exc:
...     print(exc)
4 bytes: shorter than the 5-byte header
"""

from __future__ import annotations

import struct

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
HEADER_SIZE = HEADER.size  # 5


class FramingError(ValueError):
    """The bytes are not a Confluent-framed record. Callers turn this into data."""


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix ``body`` with the magic byte and ``schema_id``."""
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split framed bytes into ``(schema_id, body)``; raise :class:`FramingError` if unframed."""
    if data is None or len(data) < HEADER_SIZE:
        size = 0 if data is None else len(data)
        raise FramingError(f"{size} bytes: shorter than the {HEADER_SIZE}-byte header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise FramingError(f"magic byte is {magic & 0xFF:#04x}, expected {MAGIC_BYTE:#04x}")
    return schema_id, bytes(data[HEADER_SIZE:])
