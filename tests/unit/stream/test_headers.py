"""Output and dead-letter headers."""
from s2s.stream import headers as hdr
from s2s.stream.messages import Reason, Request

from .fakes import Record

RECORD = Record("en", 2, 41, b"hi", key=b"k", headers=[("trace", b"abc")], timestamp=1_000)


def test_correlation_id_prefers_envelope_then_header_then_coordinates():
    assert hdr.correlation_id(RECORD, Request(text="x", id="e-1")) == "e-1"
    tagged = Record("en", 2, 41, b"hi", headers=[(hdr.CORRELATION_ID, b"h-1")])
    assert hdr.correlation_id(tagged, Request(text="x")) == "h-1"
    assert hdr.correlation_id(RECORD, None) == "en/2/41"


def test_output_headers():
    headers = hdr.as_dict(hdr.output_headers(RECORD, "c", "toy", "v1", now_ms=1_250))
    assert headers == {hdr.CORRELATION_ID: "c", hdr.SOURCE_TOPIC: "en", hdr.SOURCE_PARTITION: "2",
                       hdr.SOURCE_OFFSET: "41", hdr.MODEL_NAME: "toy", hdr.MODEL_VERSION: "v1",
                       hdr.LATENCY_MS: "250"}


def test_latency_without_a_timestamp_is_zero():
    no_time = Record("en", 0, 0, b"x", timestamp=-1)
    assert hdr.as_dict(hdr.output_headers(no_time, "c", "m", "v", now_ms=5))[hdr.LATENCY_MS] == "0"


def test_dead_letter_headers_keep_the_input_headers_after_ours():
    headers = hdr.dead_letter_headers(RECORD, "c", Reason.BAD_JSON, "x" * 5000)
    names = [name for name, _ in headers]
    assert names[:6] == [hdr.CORRELATION_ID, hdr.SOURCE_TOPIC, hdr.SOURCE_PARTITION, hdr.SOURCE_OFFSET,
                         hdr.ERROR_REASON, hdr.ERROR_DETAIL]
    assert headers[-1] == ("trace", b"abc")
    assert hdr.as_dict(headers)[hdr.ERROR_REASON] == "bad_json"
    assert len(dict(headers)[hdr.ERROR_DETAIL]) == 1000


def test_dead_letter_headers_put_our_trace_context_in_place_of_the_inputs():
    parent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ours = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01")]
    record = Record("en", 0, 1, b"x", headers=[("traceparent", parent), ("tracestate", b"a=1"), ("app", None)])
    headers = hdr.dead_letter_headers(record, "c", Reason.BAD_JSON, "d", ours)
    assert [(n, v) for n, v in headers if n.startswith("trace")] == ours
    assert headers[-1] == ("app", b"") and hdr.as_dict(headers)[hdr.NULL_HEADERS] == "app"
    assert [(n, v) for n, v in hdr.dead_letter_headers(record, "c", Reason.BAD_JSON, "d") if n.startswith("trace")] == []


def test_size_of_counts_utf8_bytes_of_any_header_name():
    from s2s.stream.headers import size_of

    assert size_of([("s2s-model-name", b"toy"), ("clé", b"ab"), ("n", None)]) == 14 + 3 + 4 + 2 + 1
    assert size_of(None) == 0
