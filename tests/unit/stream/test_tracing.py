"""W3C trace context: an input's traceparent continues on its output, never crashes on bad bytes."""
import itertools
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from s2s.stream import tracing
from s2s.stream.poll_loop import PollLoop
from s2s.stream.config import stream_config_from_dict

from .fakes import FakeConsumer, FakeDelivery, FakeObserver, FakeTranslator, Record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01".encode()
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")



def one_poll(polled, tracing: bool, **kafka):
    """A poll loop on fakes, after one step over ``polled``: (loop, its delivery)."""
    config = stream_config_from_dict({
        "kafka": {"dead_letter_topic": "dlq", "commit_interval_ms": 1, **kafka},
        "ingress": {"tracing": tracing},
        "routes": [{"name": "up", "input_topic": "in", "output_topic": "out", "model": "m"}]})
    consumer, delivery = FakeConsumer([polled], {TopicPartition("in", 0)}), FakeDelivery()
    ticks = itertools.count(start=1000.0, step=1.0)
    worker = PollLoop(config, FakeTranslator(), lambda: consumer, delivery, FakeObserver(), now=lambda: next(ticks))
    worker._consumer = consumer
    worker.step()
    return worker, delivery

def parse(headers) -> tuple[str, str, int]:
    """(trace id, span id, flags) of the one traceparent in ``headers``."""
    [value] = [v for name, v in headers if name == tracing.TRACEPARENT]
    trace_id, span_id, flags = TRACEPARENT.match(value.decode()).groups()
    assert trace_id != "0" * 32 and span_id != "0" * 16
    return trace_id, span_id, int(flags, 16)


@pytest.mark.parametrize("new_trace", [False, True])
def test_a_traceparent_continues_with_the_same_trace_and_a_new_span(new_trace):
    out = tracing.trace_headers([("traceparent", PARENT)], new_trace)
    trace_id, span_id, flags = parse(out)
    assert (trace_id, flags) == (TRACE_ID, 1)
    assert span_id != PARENT_SPAN
    assert [name for name, _ in out] == ["traceparent"]  # no tracestate came in: none goes out


def test_each_output_is_a_span_of_its_own_and_the_flags_are_the_parents():
    unsampled = f"00-{TRACE_ID}-{PARENT_SPAN}-00".encode()
    spans = {parse(tracing.trace_headers([("traceparent", unsampled)], True))[1] for _ in range(50)}
    assert len(spans) == 50
    assert parse(tracing.trace_headers([("traceparent", unsampled)], True))[2] == 0  # not sampled upstream


def test_tracestate_is_kept():
    headers = [("traceparent", PARENT), ("tracestate", b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")]
    out = dict(tracing.trace_headers(headers, False))
    assert out["tracestate"] == b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    split = [("traceparent", PARENT), ("tracestate", b"congo=t61rcWkgMzE"), ("tracestate", b"rojo=1")]
    assert dict(tracing.trace_headers(split, False))["tracestate"] == b"congo=t61rcWkgMzE,rojo=1"


def test_a_future_version_is_read_and_written_as_version_00():
    future = f"cc-{TRACE_ID}-{PARENT_SPAN}-01-what-the-future-holds".encode()
    assert parse(tracing.trace_headers([("traceparent", future)], False))[0] == TRACE_ID


MALFORMED = [
    None,                                              # a null header value
    b"",
    b"\xff\xfe\x00garbage",                            # not UTF-8
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".encode("utf-16"),
    b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01",      # all-zero trace id
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-" + b"0" * 16 + b"-01",  # all-zero span id
    b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    # the forbidden version
    b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    # upper case
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has 4 fields
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    b"00-" + b"a" * 600,                               # over the W3C length
    bytes(range(256)),
]


@pytest.mark.parametrize("value", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_traceparent_counts_as_none(value, caplog):
    with caplog.at_level(logging.DEBUG):
        assert tracing.parent_of([("traceparent", value)]) is None
        assert tracing.trace_headers([("traceparent", value), ("tracestate", b"a=1")], False) == []
        trace_id, _, flags = parse(tracing.trace_headers([("traceparent", value)], True))
    assert trace_id != TRACE_ID and flags & 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no log line per hostile record


def test_two_different_traceparents_count_as_none_and_a_repeated_one_as_one():
    other = f"00-{'1' * 32}-{PARENT_SPAN}-01".encode()
    assert tracing.trace_headers([("traceparent", PARENT), ("traceparent", other)], False) == []
    assert tracing.trace_headers([("traceparent", PARENT), ("traceparent", None)], False) == []
    assert parse(tracing.trace_headers([("traceparent", PARENT), ("traceparent", PARENT)], False))[0] == TRACE_ID


def test_a_bad_tracestate_is_dropped_and_the_trace_still_continues():
    for state in (None, b"\xff", b"x" * 600, b"not a member"):
        out = tracing.trace_headers([("traceparent", PARENT), ("tracestate", state)], False)
        assert [name for name, _ in out] == ["traceparent"] and parse(out)[0] == TRACE_ID


def test_tracing_on_without_a_traceparent_starts_a_new_sampled_trace():
    first, second = (parse(tracing.trace_headers([("other", b"x")], True)) for _ in range(2))
    assert first[0] != second[0] and first[2] & 1 and second[2] & 1
    assert dict(tracing.trace_headers(None, True)).keys() == {"traceparent"}


def test_tracing_off_without_a_traceparent_adds_nothing():
    assert tracing.trace_headers([], False) == tracing.trace_headers(None, False) == []
    assert tracing.trace_headers([("tracestate", b"a=1")], False) == []


def test_the_poll_loop_passes_ingress_tracing_on():
    """ingress.tracing reaches every output the loop delivers."""
    polled = [Record("in", 0, 0, b"a", key=b"k0"), Record("in", 0, 1, b"\xff", key=b"k1"),
              Record("in", 0, 2, b"b", key=b"k2", headers=[("traceparent", PARENT)])]
    out = {}
    for on in (False, True):
        _, delivery = one_poll(polled, on, max_poll_records=4)
        [(out[on], _, _)] = delivery.delivered
    assert [dict(o.headers).get("traceparent") for o in out[False][:2]] == [None, None]
    assert parse(out[False][2].headers)[0] == TRACE_ID
    assert all(parse(o.headers) for o in out[True])
    assert parse(out[True][2].headers)[0] == TRACE_ID


def _mutations(value: bytes) -> st.SearchStrategy[bytes]:
    """``value`` with one byte changed, cut, or padded."""
    return st.integers(0, len(value) - 1).flatmap(lambda i: st.sampled_from([
        value[:i] + b"z" + value[i + 1:], value[:i], value + b"-", b" " + value, value.upper()]))


trace_values = st.none() | st.binary(max_size=80) | st.just(PARENT) | _mutations(PARENT)
trace_heads = st.lists(st.tuples(st.sampled_from(["traceparent", "tracestate", "app"]), trace_values
                                 | st.sampled_from([b"a=1", b"congo=t61rcWkgMzE", b"x" * 600])), max_size=5)


@settings(max_examples=200, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([b"a b", b"\xff", b"", b"v" * 5_000]), trace_heads), min_size=1, max_size=5),
       st.booleans())
def test_any_trace_headers_through_the_poll_loop(fields, on):
    """Whatever the trace headers hold: every record is answered, no rewind, and each output has
    at most one traceparent: the input's trace continued when it had one, else a new one if on."""
    polled = [Record("in", 0, offset, value, key=b"k", headers=heads) for offset, (value, heads) in enumerate(fields)]
    worker, delivery = one_poll(polled, on, max_poll_records=8, max_request_bytes=4_096)
    assert worker.stats.rewinds == 0, worker.stats.last_error
    [(out, _, _)] = delivery.delivered
    assert len(out) == len(polled)
    for record, output in zip(polled, out):
        assert output.size() <= 4_096
        assert dict(output.headers).get("s2s-error-reason") != "internal_error"
        parent = tracing.parent_of(record.headers)
        if parent is None and not on:
            assert [n for n, _ in output.headers if n.startswith("trace")] == []
            continue
        trace_id, span_id, _ = parse(output.headers)  # exactly one, valid
        if parent is not None:
            assert int(trace_id, 16) == parent.trace_id and int(span_id, 16) != parent.span_id
