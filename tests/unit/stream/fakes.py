"""Stand-ins for kafka-python clients and translator calls, for the delivery bookkeeping tests."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from kafka.structs import TopicPartition

from s2s.stream.ledger import commit_map
from s2s.stream.models import Decoded, DecodeItem, TranslateResult


@dataclass(frozen=True)
class Record:
    """The fields of kafka's ConsumerRecord that the stream reads."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: list = field(default_factory=list)
    timestamp: int = 1_000


def records(topic: str, partition: int, start: int, values: list[bytes]) -> list[Record]:
    return [Record(topic, partition, start + i, v, key=f"k{start + i}".encode()) for i, v in enumerate(values)]


class FakeConsumer:
    """Hands out scripted poll results; records seeks, commits and pauses."""

    def __init__(self, polls: list[list[Record]], assigned: set[TopicPartition]):
        self.polls = deque(polls)
        self.assigned = set(assigned)
        self.paused_set: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener = None
        self.closed = False
        self.fail_commit = False
        self.highwaters: dict[TopicPartition, int] = {}  # what the last fetch responses said
        self.topic_partitions: dict[str, int] = {}
        self.poll_timeouts: list[int] = []

    def subscribe(self, topics, listener=None):
        self.topics, self.listener = topics, listener

    def poll(self, timeout_ms=0, max_records=None):
        self.poll_timeouts.append(timeout_ms)
        if not self.polls:
            return {}
        batch = self.polls.popleft()
        polled: dict[TopicPartition, list[Record]] = {}
        for record in batch:
            polled.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return polled

    def assignment(self):
        return set(self.assigned)

    def paused(self):
        return set(self.paused_set)

    def pause(self, *tps):
        self.paused_set.update(tps)

    def resume(self, *tps):
        self.paused_set.difference_update(tps)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))

    def commit(self, offsets, timeout_ms=None):
        from kafka.errors import CommitFailedError

        if self.fail_commit:
            raise CommitFailedError("rebalancing")
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def group_metadata(self):
        return "group-metadata"

    def highwater(self, tp):
        return self.highwaters.get(tp)

    def partitions_for_topic(self, topic):
        return set(range(self.topic_partitions.get(topic, 0))) or None

    def close(self, timeout_ms=None):
        self.closed = True


class FakeDelivery:
    """The Delivery seam, recording what would have been produced. ``fail_next`` makes the next
    deliveries raise; ``refuse`` names values the "broker" refuses as the record's own fault.
    ``commits_offsets``: exactly-once's shape (offsets committed with the outputs)."""

    def __init__(self, commits_offsets: bool = False):
        self.commits_offsets = commits_offsets
        self.delivered: list[tuple[list, dict, object]] = []
        self.fail_next = 0
        self.refuse: set[bytes] = set()
        self.recovered: list[dict] = []
        self.closed = False

    def deliver(self, out_records, offsets, consumer):
        from s2s.stream.delivery import DeliveryError

        refused = {i: "MessageSizeTooLargeError()" for i, r in enumerate(out_records) if r.value in self.refuse}
        if refused:
            raise DeliveryError("broker refused records", refused)
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("broker said no")
        group = consumer.group_metadata() if self.commits_offsets else None
        self.delivered.append((list(out_records), dict(offsets), group))
        return dict(offsets) if self.commits_offsets else {}

    def commit(self, consumer, offsets, timeout_ms):
        consumer.commit(commit_map(offsets), timeout_ms=timeout_ms)

    def recover(self, consumer, positions):
        self.recovered.append(dict(positions))
        return dict(positions), (dict(positions) if self.commits_offsets else {})

    def close(self, timeout_s=10.0):
        self.closed = True

    def values(self, topic: str) -> list[bytes]:
        return [r.value for out, _, _ in self.delivered for r in out if r.topic == topic]

    def keys(self, topic: str) -> list[bytes | None]:
        return [r.key for out, _, _ in self.delivered for r in out if r.topic == topic]

    def records(self, topic: str) -> list:
        return [r for out, _, _ in self.delivered for r in out if r.topic == topic]


class FakeTranslator:
    """submit() for the worker: upper-cases texts, either at once or when ``release()``d."""

    def __init__(self, immediate: bool = True):
        self.immediate = immediate
        self.calls: list[tuple[str, list[DecodeItem]]] = []
        self.alone: list[bool] = []  # per call: sent to the quarantine?
        self.waiting: list[tuple[Future, list[DecodeItem]]] = []

    def __call__(self, route, items: list[DecodeItem], alone: bool = False) -> Future:
        self.calls.append((route.name, list(items)))
        self.alone.append(alone)
        future: Future = Future()
        if self.immediate:
            future.set_result(self.answer(items))
        else:
            self.waiting.append((future, items))
        return future

    @staticmethod
    def answer(items: list[DecodeItem]) -> TranslateResult:
        return TranslateResult("fake", "1", [Decoded(text=item.text.upper()) for item in items])

    def release(self, error: Exception | None = None) -> None:
        for future, items in self.waiting:
            if error is None:
                future.set_result(self.answer(items))
            else:
                future.set_exception(error)
        self.waiting.clear()


class FakeObserver:
    """Keeps what the poll loop reports (telemetry.IngressTelemetry in a replica)."""

    def __init__(self):
        self.polled_counts: list[int] = []
        self.delivered_counts: list[tuple[int, int]] = []  # (records, outputs) per delivery
        self.lags: list[dict] = []

    def polled(self, records):
        self.polled_counts.append(len(records))

    def delivered(self, records, outputs, acked_ms):
        self.delivered_counts.append((len(records), len(outputs)))

    def lag(self, lags):
        self.lags.append(dict(lags))
