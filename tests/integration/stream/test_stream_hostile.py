"""Hostile records, as other clients send them: null header values (Kafka's console producer,
which kafka-python's producer cannot send), our own s2s-* header names holding anything, null
and large keys, many headers, binary header values, a value near the broker's size limit, and a
header key that is not UTF-8 (kcat; the broker takes it, kafka-python's consumer cannot parse
it). Each is answered or dead-lettered exactly once with its reason, the good records around
them are all answered, and nothing is rewound.

    .venv/bin/pytest tests/integration/stream/test_stream_hostile.py -v
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
from kafka import KafkaProducer

from s2s.stream import headers as hdr
from s2s.stream.kafka_admin import end_offsets

from .streams import TopicReader, header, wait_for_commits

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

IDENTITY = "s2s.stream.models:load_identity_model"
BIG_VALUE = 1_048_000  # under the broker's message.max.bytes, over what a dead letter may copy whole
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()

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
        dict(key=b"traced", value=b"a traced text", headers=[("traceparent", TRACEPARENT), ("tracestate", b"a=1")]),
        dict(key=b"bad-traceparent", value=b"a bad traceparent", headers=[("traceparent", b"\xff\x00-01")]),
    ]
    records += [dict(key=f"good-{i}".encode(), value=f"good text {i}".encode(), headers=[]) for i in range(40)]
    futures = [producer.send(topic, **record) for record in records]
    producer.flush(timeout=60)
    for future in futures:
        future.get(timeout=1)
    producer.close()


def produce_with_kcat(bootstrap: str, topic: str) -> None:
    """A header key of bytes that are not UTF-8, on partition 2, between two good records."""
    for key, headers in ((b"kcat-before", []), (b"bad-header-key", [b"-H", b"\xff\xfekey=v"]), (b"kcat-after", [])):
        subprocess.run([b"kcat", b"-P", b"-b", bootstrap.encode(), b"-t", topic.encode(), b"-p", b"2", b"-k", key,
                        *headers], input=b"kcat text\n", check=True, timeout=60)


# key -> the dead letter's reason (None: answered); keys not named here are good records.
EXPECTED = {b"null-value": "empty_text", b"big-value": "too_large"}


def test_every_hostile_record_is_answered_or_dead_lettered_once(stream_app, toy_model, kafka_broker):
    if kafka_broker.script_env is None:
        pytest.skip("the console producer runs through kafka.sh against the test's own broker")
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (make setup installs it from Debian's packages)")
    app = stream_app(toy_model, loader=IDENTITY, ingress_replicas=1)
    produce_with_console(kafka_broker, app.bootstrap, app.topics["in"])
    produce_with_kafka_python(app.bootstrap, app.topics["in"])
    produce_with_kcat(app.bootstrap, app.topics["in"])
    ends = end_offsets(app.bootstrap, app.topics["in"])
    assert sum(ends.values()) == len(CONSOLE_LINES) + 46 + 3
    wait_for_commits(app.bootstrap, app, timeout_s=180)

    written = {}
    for topic in ("out", "dlq"):
        reader = TopicReader(app.bootstrap, app.topics[topic])
        for record in reader.read_to_end(timeout_s=60):
            source = (int(header(record, hdr.SOURCE_PARTITION)), int(header(record, hdr.SOURCE_OFFSET)))
            written.setdefault(source, []).append((topic, record))
        reader.close()
    # Exactly one answer or dead letter for every offset of every partition.
    assert sorted(written) == sorted((p, o) for p, end in ends.items() for o in range(end))
    assert all(len(outs) == 1 for outs in written.values()), {k: v for k, v in written.items() if len(v) > 1}
    by_key = {out.key: (topic, out) for (topic, out), in written.values() if out.key is not None}
    for key, (topic, out) in by_key.items():
        reason = EXPECTED.get(key)
        if reason is None:
            assert topic == "out", (key[:20], hdr.as_dict(out.headers))
        else:
            assert topic == "dlq" and header(out, hdr.ERROR_REASON) == reason, hdr.as_dict(out.headers)
    keyless = sorted(((topic, out.value, header(out, hdr.ERROR_REASON), header(out, hdr.SOURCE_PARTITION))
                      for (topic, out), in written.values() if out.key is None))
    # The record with no key is answered; the unparsable one is a bare dead letter (its key unread).
    assert keyless == [("dlq", b"", "unreadable", "2"), ("out", b"no key at all", "", keyless[1][3])]
    assert by_key[b"kcat-after"][0] == "out" and by_key[b"null-header"][0] == "out"
    # W3C trace context: continued (same trace, a span of s2s's own, tracestate kept); a malformed one is none
    traced = hdr.as_dict(by_key[b"traced"][1].headers)
    assert traced["traceparent"].split("-")[1] == TRACE_ID and traced["traceparent"].encode() != TRACEPARENT
    assert traced["tracestate"] == "a=1"
    assert "traceparent" not in hdr.as_dict(by_key[b"bad-traceparent"][1].headers)  # ingress.tracing is off
    big = by_key[b"big-value"][1]
    assert len(big.value) < BIG_VALUE and header(big, hdr.ORIGINAL_SIZE).startswith(f"key=9 value={BIG_VALUE}")
    stats = [s for s in app.stats() if isinstance(s, dict)]
    assert sum(s["rewinds"] for s in stats) == 0, stats
