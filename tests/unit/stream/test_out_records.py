"""Answers and dead letters (whole, cut, bare): every kind carries the trace context the same way."""
from concurrent.futures import Future

import pytest

from s2s.stream import headers as hdr
from s2s.stream import out_records
from s2s.stream.config import RouteConfig
from s2s.stream.messages import Limits, Reason, Rejection, Request
from s2s.stream.models import Decoded, TranslateResult
from s2s.stream.polled import PolledBatch, UnreadableRecord, plan_records, submit_calls
from s2s.stream.routing import Router

from .fakes import Record
from .test_tracing import PARENT, PARENT_SPAN, TRACE_ID, parse

STATE = b"congo=t61rcWkgMzE"
TRACED = [("app", b"1"), ("traceparent", PARENT), ("tracestate", STATE)]
BAD_JSON = Rejection(Reason.BAD_JSON, "expected a value")


def traced(value: bytes = b"a b", key: bytes | None = b"k", headers=TRACED) -> Record:
    return Record("in", 0, 7, value, key=key, headers=list(headers))


def kinds(record, tracing: bool):
    """Every kind of output, built for ``record``."""
    return {
        "answer": out_records.answer(record, Request(text="a b"), "out", b"B A", "toy", "v1", 2_000, tracing),
        "dead_letter": out_records.dead_letter(record, None, BAD_JSON, "dlq", 1 << 20, tracing),
        "cut": out_records.dead_letter(record, None, BAD_JSON, "dlq", 1_500, tracing),
        "bare": out_records.bare_dead_letter(record, Rejection(Reason.UNSENDABLE, "refused", bare=True), "dlq",
                                             tracing),
    }


def trace_fields(out) -> list[tuple[str, bytes]]:
    return [(name, value) for name, value in out.headers if name in ("traceparent", "tracestate")]


@pytest.mark.parametrize("tracing", [False, True])
def test_every_kind_continues_the_inputs_trace_with_a_new_span_and_keeps_tracestate(tracing):
    record = traced(value=b"v" * 4000)  # over the cut's 1,500 bytes
    built = kinds(record, tracing)
    assert b"v" * 4000 != built["cut"].value and built["cut"].size() <= 1_500  # really a cut copy
    for kind, out in built.items():
        fields = trace_fields(out)
        assert [name for name, _ in fields] == ["traceparent", "tracestate"], kind  # one of each: ours
        trace_id, span_id, flags = parse(out.headers)
        assert (trace_id, flags) == (TRACE_ID, 1) and span_id != PARENT_SPAN, kind
        assert dict(fields)["tracestate"] == STATE, kind
    assert ("app", b"1") in built["dead_letter"].headers and ("app", b"1") in built["cut"].headers


@pytest.mark.parametrize("value", [None, b"\xff\xfe", b"00-nope", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01"])
def test_a_malformed_traceparent_is_none_and_never_copied(value):
    record = traced(headers=[("traceparent", value), ("tracestate", STATE), ("app", b"1")])
    for kind, out in kinds(record, tracing=False).items():
        assert trace_fields(out) == [], kind
        assert hdr.NULL_HEADERS not in dict(out.headers), kind  # a null traceparent is not "copied as empty"
    for kind, out in kinds(record, tracing=True).items():
        assert [name for name, _ in trace_fields(out)] == ["traceparent"], kind
        assert parse(out.headers)[2] & 1, kind


def test_without_a_traceparent_tracing_decides():
    record = traced(headers=[("app", b"1")])
    assert all(trace_fields(out) == [] for out in kinds(record, tracing=False).values())
    ids = {kind: parse(out.headers)[0] for kind, out in kinds(record, tracing=True).items()}
    assert len(set(ids.values())) == len(ids)  # each a new trace


def test_a_dead_letter_of_an_unreadable_record_gets_a_new_trace_only_with_tracing():
    unreadable = UnreadableRecord("in", 0, 3, "the consumer cannot parse it")
    rejection = Rejection(Reason.UNREADABLE, unreadable.detail, bare=True)
    assert trace_fields(out_records.bare_dead_letter(unreadable, rejection, "dlq")) == []
    assert parse(out_records.bare_dead_letter(unreadable, rejection, "dlq", tracing=True).headers)


def test_a_batchs_answers_and_dead_letters_all_continue_their_inputs_traces():
    route = RouteConfig(name="up", input_topic="in", output_topic="out", model="m")
    polled = [traced(b"a"), traced(b""), traced(b"boom"), Record("in", 0, 8, b"c", key=b"k8")]
    polled = [Record(r.topic, r.partition, offset, r.value, r.key, r.headers) for offset, r in enumerate(polled)]
    plans = plan_records(polled, Router([route]), Limits())
    future = Future()
    future.set_result(TranslateResult("m", "v", [Decoded(text="A"), Decoded(error="ValueError"), Decoded(text="C")]))
    out = PolledBatch(polled, plans, submit_calls(plans, lambda r, items, alone: future)).outputs("dlq", 0, 1 << 20)
    assert [o.topic for o in out] == ["out", "dlq", "dlq", "out"]
    assert [parse(o.headers)[0] for o in out[:3]] == [TRACE_ID] * 3
    assert trace_fields(out[3]) == []  # tracing off by default
