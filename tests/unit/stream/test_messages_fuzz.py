"""Property tests of the ingress's decoding path: whatever bytes arrive, decoding and planning
never raise, and each record becomes either a Request for a route or a Rejection with a Reason.
A record that raised there would be rewound and polled again forever: the stream would stall.

    .venv/bin/pytest tests/unit/stream/test_messages_fuzz.py -v
"""
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from s2s.stream import headers as hdr
from s2s.stream.polled import Planned, PolledBatch, plan_records, submit_calls
from s2s.stream.config import RouteConfig
from s2s.stream.messages import ENVELOPE_FIELDS, Limits, Reason, Rejection, Request, decode_value, encode_reply
from s2s.stream.routing import Router

from .fakes import FakeTranslator, Record

LIMITS = Limits(max_bytes=2_000, max_beam=8, max_len=64)
ROUTES = [RouteConfig(name="fr", input_topic="en", output_topic="fr", model="m", max_batch_size=4),
          RouteConfig(name="sum", input_topic="en", output_topic="sum", model="m", task="summarization")]
ROUTER = Router(ROUTES)
# Bounded: a few seconds in all; the generous per-example deadline only catches a hang.
FUZZ = settings(max_examples=200, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
# Field values of every JSON type, with the well-typed ones near their valid ranges.
field_values = (json_values | st.integers(min_value=-2, max_value=70) | st.sampled_from(["translation", "summarization"])
                | st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
envelopes = st.dictionaries(st.sampled_from([*ENVELOPE_FIELDS, "colour"]), field_values, max_size=6)


def to_json(value, ensure_ascii: bool) -> bytes:
    # ensure_ascii=False writes lone surrogates as themselves: not UTF-8, so fall back to escapes.
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    return text.encode("utf-8", "surrogatepass" if not ensure_ascii else "strict")


def check_outcome(decoded) -> None:
    """A Rejection names a Reason and says why; a Request can be decoded and answered."""
    assert isinstance(decoded, (Request, Rejection)), decoded
    if isinstance(decoded, Rejection):
        assert isinstance(decoded.reason, Reason) and decoded.detail
        decoded.detail.encode("utf-8")  # it goes into a header
        return
    assert decoded.text and decoded.text == decoded.text.strip()
    assert decoded.beam is None or 1 <= decoded.beam <= LIMITS.max_beam
    assert decoded.max_len is None or 1 <= decoded.max_len <= LIMITS.max_len
    encode_reply(decoded, decoded.text, "translation")  # the answer and its headers are writable
    hdr.source_headers(Record("en", 0, 0, None), hdr.correlation_id(Record("en", 0, 0, None), decoded))


@FUZZ
@given(st.binary(max_size=2_200))
def test_arbitrary_bytes_decode_to_a_request_or_a_reason(value):
    check_outcome(decode_value(value, LIMITS))


@FUZZ
@given(json_values, st.booleans())
def test_arbitrary_json_decodes_to_a_request_or_a_reason(value, ensure_ascii):
    check_outcome(decode_value(to_json(value, ensure_ascii), LIMITS))


@FUZZ
@given(envelopes, st.booleans())
@example({"text": "a", "id": "\ud800"}, True)
@example({"text": "a\udfff b"}, True)
@example({"text": "a", "task": "\ud83d"}, False)
def test_envelopes_with_arbitrary_fields_decode_to_a_request_or_a_reason(fields, ensure_ascii):
    decoded = decode_value(to_json(fields, ensure_ascii), LIMITS)
    check_outcome(decoded)
    if isinstance(decoded, Request):
        assert set(fields) <= set(ENVELOPE_FIELDS) and decoded.text == fields["text"].strip()


@pytest.mark.parametrize("value", [
    b'{"text": "a", "id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",  # overflows json's parser stack
    b'{"text": "a", "id": 1' + b"0" * 5_000 + b"}",                # over Python's 4,300-digit int cap
    b'{"text": "a", "beam": -' + b"9" * 5_000 + b"}",
])
def test_json_the_parser_cannot_hold_is_bad_json_not_an_exception(value):
    decoded = decode_value(value, Limits(max_bytes=20_000))
    assert isinstance(decoded, Rejection) and decoded.reason is Reason.BAD_JSON


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["en", "de"]), st.binary(max_size=300) | envelopes.map(
    lambda fields: to_json(fields, ensure_ascii=True))), max_size=12))
def test_planning_any_poll_never_raises_and_every_record_gets_a_plan(polled):
    records = [Record(topic, 0, offset, value, key=str(offset).encode())
               for offset, (topic, value) in enumerate(polled)]
    plans = plan_records(records, ROUTER, LIMITS)
    assert len(plans) == len(records)
    for record, plan in zip(records, plans):
        assert isinstance(plan, (Planned, Rejection)), plan
        if isinstance(plan, Planned):
            assert plan.route.input_topic == record.topic
            check_outcome(plan.request)
        else:
            check_outcome(plan)
    # Every plan turns into an answer or a dead letter, in record order, without raising.
    batch = PolledBatch(records, plans, submit_calls(plans, FakeTranslator()))
    outputs = batch.outputs("dlq", now_ms=2_000, max_bytes=1 << 20)
    assert len(outputs) == len(records)
    assert all((out.topic == "dlq") == isinstance(plan, Rejection) for out, plan in zip(outputs, plans))
