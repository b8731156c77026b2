"""Kafka headers on output and dead-letter records.

Every record the application writes says where its input came from, so a reader can join
outputs to inputs and find the input again:

    s2s-correlation-id    envelope "id", else the input's own s2s-correlation-id header,
                          else "<topic>/<partition>/<offset>"
    s2s-source-topic      input topic
    s2s-source-partition  input partition (decimal)
    s2s-source-offset     input offset (decimal)
    s2s-model-name        outputs only: checkpoint name
    s2s-model-version     outputs only: checkpoint version
    s2s-latency-ms        outputs only: input timestamp -> output sent, in milliseconds
    s2s-error-reason      dead letters only: a messages.Reason value
    s2s-error-detail      dead letters only: what was wrong, for a human
    s2s-original-size     dead letters cut to fit the producer's request size only: the
                          input's "key=<bytes> value=<bytes> headers=<bytes>" sizes
    s2s-null-headers      dead letters only: names of input headers whose value was null
    traceparent           W3C trace context of the s2s span (tracing.py): a child of the input's
    tracestate            traceparent, tracestate kept; a new trace with ingress.tracing; else none

A dead letter also keeps the input's own headers (after the ones above), key and value bytes,
except its traceparent and tracestate: those on an output are always ours (the continued ones).
Kafka lets a header value be null and any bytes; kafka-python's producer refuses a null value,
so a null is copied as an empty value and named in s2s-null-headers. A dead letter too large to
produce carries a cut copy (records.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .messages import Reason, Request
from .tracing import FIELDS as TRACE_FIELDS

CORRELATION_ID = "s2s-correlation-id"
SOURCE_TOPIC = "s2s-source-topic"
SOURCE_PARTITION = "s2s-source-partition"
SOURCE_OFFSET = "s2s-source-offset"
MODEL_NAME = "s2s-model-name"
MODEL_VERSION = "s2s-model-version"
LATENCY_MS = "s2s-latency-ms"
ERROR_REASON = "s2s-error-reason"
ERROR_DETAIL = "s2s-error-detail"
ORIGINAL_SIZE = "s2s-original-size"
NULL_HEADERS = "s2s-null-headers"
_DETAIL_CAP = 1000  # bytes; a detail quotes parser errors, never the whole input
_ID_CAP = 256       # characters; an id is copied into every answer's headers, whatever its size

Headers = list[tuple[str, bytes]]
InputHeaders = list[tuple[str, bytes | None]]  # what a consumer hands over: values may be null


class SourceRecord(Protocol):
    """What we read from a consumed record (kafka's ConsumerRecord has all of it)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    headers: InputHeaders


def correlation_id(record: SourceRecord, request: Request | None) -> str:
    """The envelope id, else the input's own s2s-correlation-id header (any bytes; a null one
    is ignored), else the record's position. Capped: it is copied into every answer."""
    if request is not None and request.id is not None:
        return request.id[:_ID_CAP]
    for name, value in record.headers or ():
        if name == CORRELATION_ID and value:
            return value.decode("utf-8", "replace")[:_ID_CAP]
    return f"{record.topic}/{record.partition}/{record.offset}"


def source_headers(record: SourceRecord, corr_id: str) -> Headers:
    return [(CORRELATION_ID, corr_id.encode()), (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()), (SOURCE_OFFSET, str(record.offset).encode())]


def output_headers(record: SourceRecord, corr_id: str, model_name: str, model_version: str,
                   now_ms: int, trace: Headers = ()) -> Headers:
    """Where the input was, which model answered, how long it took; ``trace``: tracing.trace_headers."""
    latency = max(0, now_ms - record.timestamp) if record.timestamp and record.timestamp > 0 else 0
    return [*source_headers(record, corr_id), (MODEL_NAME, model_name.encode()),
            (MODEL_VERSION, model_version.encode()), (LATENCY_MS, str(latency).encode()), *trace]


def error_headers(record: SourceRecord, corr_id: str, reason: Reason, detail: str, trace: Headers = ()) -> Headers:
    """What every dead letter says: where its input was, and why it is here (and its trace context)."""
    return source_headers(record, corr_id) + [
        (ERROR_REASON, reason.value.encode()),
        (ERROR_DETAIL, detail.encode("utf-8", "replace")[:_DETAIL_CAP])] + list(trace)


def copied_headers(record: SourceRecord) -> InputHeaders:
    """The input's headers a dead letter may copy: all but the trace context (ours replaces it,
    and a malformed one counts as none)."""
    return [(name, value) for name, value in record.headers or () if name not in TRACE_FIELDS]


def dead_letter_headers(record: SourceRecord, corr_id: str, reason: Reason, detail: str,
                        trace: Headers = ()) -> Headers:
    """error_headers, then the input's own headers except the names ours already carry (so a
    reader that keeps the last value of a name still reads ours)."""
    ours = error_headers(record, corr_id, reason, detail, trace)
    taken = {name for name, _ in ours} | {NULL_HEADERS}
    copied = [(name, value) for name, value in copied_headers(record) if name not in taken]
    nulls = [name for name, value in copied if value is None]
    if nulls:
        ours.append((NULL_HEADERS, ",".join(nulls).encode("utf-8", "replace")[:_DETAIL_CAP]))
    return ours + [(name, b"" if value is None else value) for name, value in copied]


def size_of(headers: Iterable[tuple[str, bytes | None]] | None) -> int:
    """Bytes the headers take in a record (names and values; framing left out)."""
    # An ASCII name (all of ours, nearly every input's) is as long as its UTF-8 bytes: no encode.
    return sum((len(name) if name.isascii() else len(name.encode("utf-8", "replace"))) + len(value or b"")
               for name, value in headers or ())


def as_dict(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, last value winning; for readers, tests and `s2s consume`."""
    return {name: (value or b"").decode("utf-8", "replace") for name, value in headers or ()}
