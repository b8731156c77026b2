"""Decoding input values: every good shape, and a reason for every bad one."""
import json

import pytest

from s2s.stream.messages import Limits, Reason, Rejection, Request, decode_value, encode_reply

LIMITS = Limits(max_bytes=100, max_beam=8, max_len=50)


def test_plain_utf8_text_is_stripped():
    assert decode_value("  Le chat dort.\n".encode(), LIMITS) == Request(text="Le chat dort.")


def test_envelope_fields_are_read():
    value = json.dumps({"id": 7, "text": "hello", "task": "summarization", "beam": 3, "max_len": 20}).encode()
    assert decode_value(value, LIMITS) == Request(text="hello", id="7", task="summarization", beam=3,
                                                  max_len=20, envelope=True)


def test_envelope_with_only_text():
    assert decode_value(b'{"text": "x y"}', LIMITS) == Request(text="x y", envelope=True)


@pytest.mark.parametrize("value, reason", [
    (b"\xff\xfe bad bytes", Reason.NOT_UTF8),
    (b'{"text": "unterminated', Reason.BAD_JSON),
    (b"{not json at all}", Reason.BAD_JSON),
    (b"   ", Reason.EMPTY),
    (b"", Reason.EMPTY),
    (None, Reason.EMPTY),
    (b'{"text": "   "}', Reason.EMPTY),
    (b'{"id": 1}', Reason.EMPTY),
    (b"x" * 101, Reason.TOO_LARGE),
    (b'{"text": "a", "beam": 9}', Reason.BAD_FIELD),
    (b'{"text": "a", "beam": 0}', Reason.BAD_FIELD),
    (b'{"text": "a", "beam": true}', Reason.BAD_FIELD),
    (b'{"text": "a", "max_len": 51}', Reason.BAD_FIELD),
    (b'{"text": "a", "max_len": "10"}', Reason.BAD_FIELD),
    (b'{"text": 5}', Reason.BAD_FIELD),
    (b'{"text": "a", "task": 3}', Reason.BAD_FIELD),
    (b'{"text": "a", "id": [1]}', Reason.BAD_FIELD),
    (b'{"text": "a", "colour": "red"}', Reason.BAD_FIELD),
])
def test_bad_values_are_rejected_with_their_reason(value, reason):
    decoded = decode_value(value, LIMITS)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is reason and decoded.detail


def test_json_array_is_not_an_envelope_but_plain_text():
    # Only an object is an envelope; "[1, 2]" is text a model may well be asked to reverse.
    assert decode_value(b"[1, 2]", LIMITS) == Request(text="[1, 2]")


def test_size_cap_counts_bytes_not_characters():
    assert isinstance(decode_value(("é" * 51).encode(), LIMITS), Rejection)  # 102 bytes
    assert decode_value(("é" * 50).encode(), LIMITS) == Request(text="é" * 50)


def test_reply_in_kind():
    assert encode_reply(Request(text="a"), "b c", "translation") == b"b c"
    envelope = encode_reply(Request(text="a", id="9", envelope=True), "bé", "translation")
    assert json.loads(envelope) == {"id": "9", "text": "bé", "task": "translation"}


def test_limits_validate():
    with pytest.raises(ValueError, match="max_beam"):
        Limits(max_beam=0).validate()
