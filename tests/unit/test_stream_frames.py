"""The stream's frames as the server writes them itself (api/stream.py's
text_frame, bypassing Tornado's write_message): whole, unmasked text frames
whose payload length takes the 7-bit, 16-bit or 64-bit form of RFC 6455
section 5.2 as its size requires; an answer pushed to many streams is made
into a frame once."""

from __future__ import annotations

import struct

import pytest

from atomchat_server.api.stream import OpenStreams, sync_frame, text_frame


def read_frame(frame: bytes) -> tuple[int, int, bytes]:
    """(first byte, length form, payload) of one whole unmasked frame, per RFC 6455."""
    first, second = frame[0], frame[1]
    assert not second & 0x80, "a server's frames are not masked"
    size, start = second & 0x7F, 2
    form = size
    if size == 126:
        (size,), start = struct.unpack("!H", frame[2:4]), 4
    elif size == 127:
        (size,), start = struct.unpack("!Q", frame[2:10]), 10
    payload = frame[start:]
    assert len(payload) == size, "the frame is exactly its header and its payload"
    return first, form, payload


@pytest.mark.parametrize(
    ("size", "form"), [(0, 0), (125, 125), (126, 126), (65_535, 126), (65_536, 127), (200_000, 127)]
)
def test_a_text_frame_is_final_unmasked_and_sized_in_the_shortest_form(size, form):
    text = "é" * (size // 2) + "x" * (size % 2)  # two bytes each in UTF-8: sized in bytes, not characters
    first, length_form, payload = read_frame(text_frame(text))
    assert first == 0x81  # FIN, text
    assert length_form == form
    assert payload.decode() == text


def test_a_sync_frame_is_the_answer_with_its_type_first():
    _, _, payload = read_frame(sync_frame('{"next_batch":"s7","rooms":{}}'))
    assert payload == b'{"type":"sync","next_batch":"s7","rooms":{}}'


def test_an_answer_pushed_to_many_streams_is_made_into_one_frame():
    streams = OpenStreams(30.0)
    answer = '{"next_batch":"s8"}'
    frame = streams.pushed_frame(answer)
    assert streams.pushed_frame(answer) is frame
    other = streams.pushed_frame('{"next_batch":"s9"}')
    assert read_frame(other)[2] == b'{"type":"sync","next_batch":"s9"}'
    assert read_frame(frame)[2] == b'{"type":"sync","next_batch":"s8"}'
