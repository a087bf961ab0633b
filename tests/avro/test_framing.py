import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.avro.framing import HEADER_SIZE, FramingError, frame, unframe


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=2000))
def test_frame_round_trip(schema_id: int, body: bytes) -> None:
    framed = frame(schema_id, body)
    assert framed[0] == 0
    assert int.from_bytes(framed[1:5], "big") == schema_id
    assert unframe(framed) == (schema_id, body)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "0 bytes"),
        (b"\x00\x00\x00\x01", "4 bytes"),
        (b"\x01\x00\x00\x00\x01body", "magic byte is 0x01"),
        (b'{"json": 1}', "magic byte is 0x7b"),
    ],
)
def test_unframe_rejects_unframed_bytes(data: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        unframe(data)


def test_header_is_five_bytes() -> None:
    assert HEADER_SIZE == 5
    assert frame(258, b"") == b"\x00\x00\x00\x01\x02"
