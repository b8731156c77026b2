"""The records the ingress produces: answers and dead letters, each made to fit the producer.

Every input record becomes exactly one of these, whatever it held: a dead letter that would be
over ``max_bytes`` (the producer's request size) is cut until it fits, and the escalation for a
record the broker still refuses ends in a bare letter (``bare_dead_letter``) that holds no input
bytes at all, only where the input was and why it is here.

    answer            output topic, the input's key, the decoded text, source + model headers
    dead_letter       dead-letter topic, the input's key, value and headers (cut to fit)
    bare_dead_letter  dead-letter topic, no key, empty value, where-and-why headers only

Each of them carries the W3C trace context of the s2s span (tracing.py): the input's traceparent
continued (same trace id, a new span id, tracestate kept), else with ``tracing`` (the config's
ingress.tracing) a new trace, else none.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import headers as hdr
from .tracing import trace_headers
from .messages import Reason, Rejection, Request

RECORD_OVERHEAD = 512  # bytes a record batch adds around one record (headers' framing, varints, batch header)


@dataclass(frozen=True)
class OutRecord:
    """A record to produce: an answer on an output topic or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers

    def size(self) -> int:
        """Roughly what the producer counts against max_request_size (a little more)."""
        return len(self.key or b"") + len(self.value or b"") + hdr.size_of(self.headers) + RECORD_OVERHEAD


def answer(record, request: Request, topic: str, value: bytes, model_name: str, model_version: str,
           now_ms: int, tracing: bool = False) -> OutRecord:
    corr = hdr.correlation_id(record, request)
    trace = trace_headers(record.headers, tracing)
    headers = hdr.output_headers(record, corr, model_name, model_version, now_ms, trace)
    return OutRecord(topic, record.key, value, headers)


def dead_letter(record, request: Request | None, rejection: Rejection, topic: str, max_bytes: int,
                tracing: bool = False) -> OutRecord:
    """The input's key, value and headers with ours in front; cut to ``max_bytes`` if over."""
    corr = hdr.correlation_id(record, request)
    trace = trace_headers(record.headers, tracing)
    headers = hdr.dead_letter_headers(record, corr, rejection.reason, rejection.detail, trace)
    letter = OutRecord(topic, record.key, _value(record.value, record.key), headers)
    if letter.size() <= max_bytes:
        return letter
    return _cut(record, hdr.error_headers(record, corr, rejection.reason, rejection.detail, trace), topic, max_bytes)


def bare_dead_letter(record, rejection: Rejection, topic: str, tracing: bool = False) -> OutRecord:
    """A dead letter that copies nothing of the input: the last step when even a cut copy is
    refused. The input is still in its topic at the offset the headers name."""
    corr = hdr.correlation_id(record, None)
    headers = hdr.error_headers(record, corr, rejection.reason, rejection.detail,
                                trace_headers(record.headers, tracing))
    if rejection.reason is not Reason.UNREADABLE:  # an unparsed record's sizes are unknown
        headers.append(_sizes(record))
    return OutRecord(topic, None, b"", headers)


def _cut(record, ours: hdr.Headers, topic: str, max_bytes: int) -> OutRecord:
    """Our headers and the original sizes always; then the input's headers if they fit in half
    of what is left, then as much of the key and the value as fits (key first: it names the record)."""
    ours = ours + [_sizes(record)]
    room = max_bytes - hdr.size_of(ours) - RECORD_OVERHEAD
    copied = [(name, b"" if value is None else value) for name, value in hdr.copied_headers(record)
              if not name.startswith("s2s-")]
    if hdr.size_of(copied) > room // 2:
        copied = []
    room -= hdr.size_of(copied)
    key = record.key[:max(0, room // 2)] if record.key is not None else None
    room -= len(key or b"")
    value = (record.value or b"")[:max(0, room)]
    return OutRecord(topic, key, _value(value, key), ours + copied)


def _sizes(record) -> tuple[str, bytes]:
    sizes = f"key={len(record.key or b'')} value={len(record.value or b'')} headers={hdr.size_of(record.headers)}"
    return hdr.ORIGINAL_SIZE, sizes.encode()


def _value(value: bytes | None, key: bytes | None) -> bytes | None:
    # Kafka refuses a record with neither key nor value; an empty value stands for "none".
    return value if value is not None or key is not None else b""
