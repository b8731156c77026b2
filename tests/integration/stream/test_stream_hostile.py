"""Hostile records, as other clients send them: null header values (Kafka's console producer,
which kafka-python's producer cannot send), our own s2s-* header names holding anything, null
and large keys, many headers, binary header values, a value near the broker's size limit. Each is
answered or dead-lettered exactly once with its reason, the good records around them are all
answered, and nothing is rewound.

    .venv/bin/pytest tests/integration/stream/test_stream_hostile.py -v
"""
from __future__ import annotations

import pytest
from kafka import KafkaProducer

from s2s.stream import headers as hdr

from .streams import TopicReader, header, wait_for_commits

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

IDENTITY = "s2s.stream.models:load_identity_model"
BIG_VALUE = 1_048_000  # under the broker's message.max.bytes, over what a dead letter may copy whole

# Console producer lines: headers TAB key TAB value; NULL stands for a null key/value/header value.
CONSOLE_LINES = [
    "trace:NULL\tnull-header\tnull header value",
    "s2s-correlation-id:NULL,s2s-source-offset:NULL\town-names-null\tour header names null",
    "x:1\tNULL\tno key at all",
    "s2s-error-reason:nonsense\tnull-value\tNULL",
]


def produce_with_console(kafka_broker, bootstrap: str, topic: str) -> None:
    result = kafka_broker.kafka_sh(
        "console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--property", "parse.key=true", "--property", "parse.headers=true", "--property", "null.marker=NULL",
        "--producer-property", "acks=all", input="\n".join(CONSOLE_LINES) + "\n", timeout=120)
    assert result.returncode == 0, result.stderr


def produce_with_kafka_python(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=1_100_000)
    records = [
        dict(key=b"binary-headers", value=b"binary header values",
             headers=[(hdr.CORRELATION_ID, b"\xff\xfe\x00"), ("bin", bytes(range(256)))]),
        dict(key=b"many-headers", value=b"many headers", headers=[(f"h{i}", b"v" * 20) for i in range(500)]),
        dict(key=b"k" * 900_000, value=b"large key", headers=[]),
        dict(key=b"big-value", value=b"x" * BIG_VALUE, headers=[("origin", b"test")]),
    ]
    records += [dict(key=f"good-{i}".encode(), value=f"good text {i}".encode(), headers=[]) for i in range(40)]
    futures = [producer.send(topic, **record) for record in records]
    producer.flush(timeout=60)
    for future in futures:
        future.get(timeout=1)
    producer.close()


def expected_reason(record) -> str | None:
    """None: must be answered; else the dead letter's reason."""
    if record.value is None:
        return "empty_text"
    if len(record.value) > 16_384:
        return "too_large"
    return None


def test_every_hostile_record_is_answered_or_dead_lettered_once(stream_app, toy_model, kafka_broker):
    if kafka_broker.script_env is None:
        pytest.skip("the console producer runs through kafka.sh against the test's own broker")
    app = stream_app(toy_model, loader=IDENTITY, ingress_replicas=1)
    produce_with_console(kafka_broker, app.bootstrap, app.topics["in"])
    produce_with_kafka_python(app.bootstrap, app.topics["in"])

    inputs = TopicReader(app.bootstrap, app.topics["in"])
    sent = inputs.read_to_end(timeout_s=60)
    inputs.close()
    assert len(sent) == len(CONSOLE_LINES) + 44
    assert any(value is None for record in sent for _, value in record.headers)  # the console sent a null
    wait_for_commits(app.bootstrap, app, timeout_s=180)

    written = {}
    for topic in ("out", "dlq"):
        reader = TopicReader(app.bootstrap, app.topics[topic])
        for record in reader.read_to_end(timeout_s=60):
            source = (int(header(record, hdr.SOURCE_PARTITION)), int(header(record, hdr.SOURCE_OFFSET)))
            written.setdefault(source, []).append((topic, record))
        reader.close()
    for record in sent:
        outs = written.get((record.partition, record.offset), [])
        assert len(outs) == 1, (record.key and record.key[:20], [t for t, _ in outs])
        topic, out = outs[0]
        reason = expected_reason(record)
        if reason is None:
            assert topic == "out" and out.key == record.key and out.value == record.value.strip(), out
        else:
            assert topic == "dlq" and header(out, hdr.ERROR_REASON) == reason, hdr.as_dict(out.headers)
    big = next(out for (_, out), in written.values() if out.key == b"big-value")
    assert len(big.value) < BIG_VALUE and header(big, hdr.ORIGINAL_SIZE).startswith(f"key=9 value={BIG_VALUE}")
    stats = [s for s in app.stats() if isinstance(s, dict)]
    assert sum(s["rewinds"] for s in stats) == 0, stats
