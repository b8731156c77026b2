"""Property test of whole records through the poll loop: any key, value, headers (null values,
binary values, our own s2s-* names) and timestamp that Kafka accepts is answered or dead-lettered
exactly once, in one pass, with records kafka-python's producer would take.

    .venv/bin/pytest tests/unit/stream/test_records_fuzz.py -v
"""
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from s2s.stream import headers as hdr
from s2s.stream.config import stream_config_from_dict
from s2s.stream.messages import Reason
from s2s.stream.poll_loop import PollLoop

from .fakes import FakeConsumer, FakeDelivery, FakeObserver, FakeTranslator, Record

MAX_REQUEST = 4_096  # small, so that keys and values near it exercise the cutting
FUZZ = settings(max_examples=300, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from([hdr.CORRELATION_ID, hdr.SOURCE_TOPIC, hdr.ERROR_REASON, hdr.NULL_HEADERS, "trace", ""]) \
    | st.text(max_size=12)
header_values = st.none() | st.binary(max_size=64) | st.binary(min_size=1_000, max_size=3_000)
headers = st.lists(st.tuples(names, header_values), max_size=8)
keys = st.none() | st.binary(max_size=16) | st.binary(min_size=3_000, max_size=6_000)
values = (st.none() | st.binary(max_size=64) | st.text(max_size=40).map(str.encode)
          | st.binary(min_size=3_000, max_size=9_000) | st.just(b'{"text": "a", "id": "' + b"i" * 3_000 + b'"}'))
timestamps = st.sampled_from([-1, 0, 1_000, 2 ** 62])
records = st.lists(st.tuples(keys, values, headers, timestamps), min_size=1, max_size=6)


class StrictDelivery(FakeDelivery):
    """Refuses, as kafka-python's producer would, what it could not send."""

    def deliver(self, out_records, offsets, consumer):
        for out in out_records:
            assert out.key is not None or out.value is not None, "Kafka needs a key or a value"
            assert all(isinstance(n, str) and isinstance(v, bytes) for n, v in out.headers), out.headers
            assert out.size() <= MAX_REQUEST, out.size()
        return super().deliver(out_records, offsets, consumer)


def worker_for(polled):
    config = stream_config_from_dict({
        "kafka": {"dead_letter_topic": "dlq", "max_poll_records": 8, "max_in_flight": 8, "commit_interval_ms": 1,
                  "max_request_bytes": MAX_REQUEST},
        "limits": {"max_bytes": 2_000}, "ingress": {"drain_timeout_s": 0.2},
        "routes": [{"name": "up", "input_topic": "in", "output_topic": "out", "model": "m"}]})
    consumer, delivery = FakeConsumer([polled], {TopicPartition("in", 0)}), StrictDelivery()
    ticks = itertools.count(start=1000.0, step=1.0)
    worker = PollLoop(config, FakeTranslator(), lambda: consumer, delivery, FakeObserver(), now=lambda: next(ticks))
    worker._consumer = consumer
    return worker, consumer, delivery


def _plainly_good(record) -> bool:
    """A short text with a short key: whatever its headers hold, it must be answered."""
    text = (record.value or b"").decode("utf-8", "replace")
    return (record.value is not None and len(record.value) < 1_000 and text.isascii() and text.strip() != ""
            and not text.lstrip().startswith("{") and len(record.key or b"") < 100)


@FUZZ
@given(records)
def test_any_record_is_answered_or_dead_lettered_once_in_one_pass(fields):
    polled = [Record("in", 0, offset, value, key=key, headers=list(heads), timestamp=ts)
              for offset, (key, value, heads, ts) in enumerate(fields)]
    worker, consumer, delivery = worker_for(polled)
    worker.step()
    assert worker.stats.rewinds == 0, worker.stats.last_error
    [(out, _, _)] = delivery.delivered
    assert len(out) == len(polled)
    for record, answer in zip(polled, out):
        got = hdr.as_dict(answer.headers)
        assert got[hdr.SOURCE_OFFSET] == str(record.offset)
        if answer.topic == "dlq":
            # A known reason, whatever the input's own headers said; never a bug's.
            assert Reason(got[hdr.ERROR_REASON]) is not Reason.INTERNAL_ERROR, got[hdr.ERROR_DETAIL]
            assert not _plainly_good(record), (record, got)
        else:
            assert answer.topic == "out" and answer.key == record.key
    assert consumer.commits[-1] == {TopicPartition("in", 0): len(polled)}
