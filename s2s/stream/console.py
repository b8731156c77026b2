"""`s2s produce` and `s2s consume`: try the stream by hand (Kafka's console tools and kcat work
just as well; these know the s2s headers and need no JVM)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from .headers import as_dict
from .kafka_admin import security_configs
from .security import KafkaSecurity


def split_line(line: str, key_sep: str | None) -> tuple[bytes | None, bytes]:
    """``key<sep>value`` -> (key, value); without a separator (or none in the line) no key."""
    if key_sep and key_sep in line:
        key, value = line.split(key_sep, 1)
        return key.encode("utf-8"), value.encode("utf-8")
    return None, line.encode("utf-8")


def produce_lines(bootstrap: str, topic: str, lines: Iterable[str], key_sep: str | None = None,
                  timeout_s: float = 60.0, security: KafkaSecurity | None = None) -> int:
    """Send each non-blank line as one record (acks=all); returns how many were acknowledged.

    ``security``: TLS/SASL settings (None: $S2S_KAFKA_SECURITY's, else PLAINTEXT)."""
    producer = KafkaProducer(**security_configs(bootstrap, security), bootstrap_servers=bootstrap,
                             acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value)
                   for key, value in (split_line(line.rstrip("\r\n"), key_sep) for line in lines if line.strip())]
        producer.flush(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    failed = [f for f in futures if not f.succeeded()]
    if failed:
        raise KafkaError(f"{len(failed)} of {len(futures)} records were not acknowledged: {failed[0].exception!r}")
    return len(futures)


def read_records(bootstrap: str, topic: str, count: int | None, timeout_s: float, from_beginning: bool,
                 read_committed: bool = False, security: KafkaSecurity | None = None) -> Iterator:
    """Records of every partition of ``topic`` (no consumer group, nothing committed) until
    ``count`` arrived or ``timeout_s`` passed."""
    consumer = KafkaConsumer(**security_configs(bootstrap, security), bootstrap_servers=bootstrap,
                             enable_auto_commit=False,
                             isolation_level="read_committed" if read_committed else "read_uncommitted")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist at {bootstrap}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)()
        yield from _poll_until(consumer, count, time.monotonic() + timeout_s)
    finally:
        consumer.close()


def _poll_until(consumer: KafkaConsumer, count: int | None, deadline: float) -> Iterator:
    seen = 0
    while (count is None or seen < count) and time.monotonic() < deadline:
        wait_ms = int(max(1, min(500, (deadline - time.monotonic()) * 1000)))
        for batch in consumer.poll(timeout_ms=wait_ms).values():
            for record in batch:
                if count is not None and seen >= count:
                    return
                seen += 1
                yield record


def format_record(record, show_headers: bool) -> str:
    """``key<TAB>value`` (and ``<TAB>{headers as JSON}``); a missing key prints as empty."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    value = record.value.decode("utf-8", "replace") if record.value is not None else ""
    line = f"{key}\t{value}"
    if show_headers:
        line += "\t" + json.dumps(as_dict(record.headers), ensure_ascii=False, sort_keys=True)
    return line


def print_records(records: Iterable, out: TextIO, show_headers: bool) -> int:
    printed = 0
    for record in records:
        print(format_record(record, show_headers), file=out, flush=True)
        printed += 1
    return printed
