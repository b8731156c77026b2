"""Poll batches: planning, chunked translator calls, answers and dead letters in record order."""
from concurrent.futures import Future

import pytest
from kafka.structs import TopicPartition

from s2s.stream import headers as hdr
from s2s.stream.polled import Planned, PolledBatch, plan_records, submit_calls
from s2s.stream.config import RouteConfig
from s2s.stream.messages import Limits, Reason, Rejection
from s2s.stream.models import Decoded, TranslateResult
from s2s.stream.routing import Router

from .fakes import FakeTranslator, Record, records

ROUTE = RouteConfig(name="up", input_topic="in", output_topic="out", model="m", max_batch_size=2, beam=4)
ROUTER = Router([ROUTE])
LIMITS = Limits(max_bytes=50)


def test_plan_decodes_and_routes():
    polled = records("in", 0, 0, [b"a b", b"\xff", b'{"text": "c", "task": "nope"}', b'{"text": "d", "beam": 2}'])
    plans = plan_records(polled, ROUTER, LIMITS)
    assert isinstance(plans[0], Planned) and plans[0].route is ROUTE
    assert plans[1].reason is Reason.NOT_UTF8
    assert plans[2].reason is Reason.UNKNOWN_TASK
    assert plans[3].request.beam == 2


def test_calls_are_chunked_to_the_route_batch_size_and_carry_search_settings():
    translator = FakeTranslator()
    polled = records("in", 0, 0, [b"a", b"\xff", b"b", b"c", b'{"text": "d", "beam": 2, "max_len": 9}'])
    calls = submit_calls(plan_records(polled, ROUTER, LIMITS), translator)
    assert [call.indices for call in calls] == [[0, 2], [3, 4]]
    assert [[(i.text, i.beam, i.max_len) for i in items] for _, items in translator.calls] == [
        [("a", 4, None), ("b", 4, None)], [("c", 4, None), ("d", 2, 9)]]


def test_a_canary_s_records_go_in_calls_of_their_own_with_the_canary_s_model():
    route = ROUTE.replace(max_batch_size=10, canary={"model": "m2", "percent": 50})
    router = Router([route])
    polled = records("in", 0, 0, [f"t{i}".encode() for i in range(40)])
    plans = plan_records(polled, router, LIMITS)
    calls = submit_calls(plans, FakeTranslator())
    models = {call.route.model for call in calls}
    assert models == {"m", "m2"}
    for call in calls:
        assert {plans[i].route.model for i in call.indices} == {call.route.model}
        assert all(router.serving(route, polled[i].key, 0).model == call.route.model for i in call.indices)
    assert sorted(i for call in calls for i in call.indices) == list(range(40))


def test_outputs_keep_record_order_and_dead_letter_bad_input_and_model_errors():
    polled = records("in", 1, 10, [b"a", b"", b"b"])
    plans = plan_records(polled, ROUTER, LIMITS)
    future = Future()
    future.set_result(TranslateResult("m", "v", [Decoded(text="A"), Decoded(error="ValueError: no")]))
    batch = PolledBatch(polled, plans, submit_calls(plans, lambda route, items, alone: future))
    out = batch.outputs("dlq", now_ms=2_000, max_bytes=1 << 20)
    assert [(o.topic, o.key, o.value) for o in out] == [("out", b"k10", b"A"), ("dlq", b"k11", b""),
                                                       ("dlq", b"k12", b"b")]
    assert hdr.as_dict(out[0].headers)[hdr.MODEL_VERSION] == "v"
    assert hdr.as_dict(out[1].headers)[hdr.ERROR_REASON] == "empty_text"
    assert hdr.as_dict(out[2].headers)[hdr.ERROR_REASON] == "model_error"


def test_a_failed_call_is_raised_not_dead_lettered():
    polled = records("in", 0, 0, [b"a"])
    plans = plan_records(polled, ROUTER, LIMITS)
    future = Future()
    future.set_exception(RuntimeError("replica died"))
    batch = PolledBatch(polled, plans, submit_calls(plans, lambda route, items, alone: future))
    assert batch.translated()
    with pytest.raises(RuntimeError, match="replica died"):
        batch.outputs("dlq", 0, 1 << 20)


def test_short_answer_is_an_error():
    polled = records("in", 0, 0, [b"a", b"b"])
    plans = plan_records(polled, ROUTER, LIMITS)
    future = Future()
    future.set_result(TranslateResult("m", "v", [Decoded(text="A")]))
    with pytest.raises(RuntimeError, match="answered 1 of 2"):
        PolledBatch(polled, plans, submit_calls(plans, lambda route, items, alone: future)).outputs("dlq", 0, 1 << 20)


def test_offsets_per_partition():
    polled = records("in", 0, 5, [b"a", b"b"]) + records("in", 1, 7, [b"c"])
    batch = PolledBatch(polled, [Rejection(Reason.EMPTY, "")] * 3, [])
    assert batch.first_offsets() == {TopicPartition("in", 0): 5, TopicPartition("in", 1): 7}
    assert batch.next_offsets() == {TopicPartition("in", 0): 7, TopicPartition("in", 1): 8}
    assert batch.translated()  # nothing to translate


def test_tombstone_without_key_becomes_an_empty_dead_letter():
    polled = [Record("in", 0, 0, None, key=None)]
    batch = PolledBatch(polled, plan_records(polled, ROUTER, LIMITS), [])
    [out] = batch.outputs("dlq", 0, 1 << 20)
    assert (out.key, out.value) == (None, b"")
