"""W3C trace context through the stream: an input's ``traceparent`` continues on its answer or
dead letter.

    input has a valid traceparent   -> same trace id, a NEW span id (the s2s span, child of the
                                       input's), the input's trace flags, its tracestate kept
    none (or a malformed one)       -> ingress.tracing true: a new trace (new trace and span ids,
                                       sampled); false: no traceparent on the output at all

Parsing and formatting are OpenTelemetry's (TraceContextTextMapPropagator, opentelemetry-api,
which comes with Ray), the ids come from the SDK's RandomIdGenerator. s2s records no spans of its
own: the output's traceparent names the span s2s stands for, so a consumer's span is its child.

Kafka header values are any bytes and may be null. A value that is null, not UTF-8, longer than
the W3C limit or not a traceparent the propagator accepts, and two different traceparents on one
record, all count as "no traceparent": never an error, and never a reason to stall a partition.
A tracestate that is too long or invalid is dropped (W3C lets a vendor discard it).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
FIELDS = frozenset((TRACEPARENT, TRACESTATE))  # header names that are always ours on an output
# The propagator's own limits, checked first so that a hostile record costs no warning log line.
_TRACEPARENT_MAX = 512
_TRACESTATE_MAX = 512

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_NEW_TRACE_FLAGS = trace.TraceFlags(trace.TraceFlags.SAMPLED | (
    trace.TraceFlags.RANDOM_TRACE_ID if _IDS.is_trace_id_random() else 0))  # as the OpenTelemetry SDK sets them


def parent_of(headers: Iterable[tuple[str, bytes | None]] | None) -> trace.SpanContext | None:
    """The span context an input record's headers carry, or None (absent or malformed)."""
    parents: set[str] = set()
    states: list[str] = []
    for name, value in headers or ():
        if name == TRACEPARENT:
            parents.add(_text(value, _TRACEPARENT_MAX) or "")  # a null/binary one still makes two
        elif name == TRACESTATE:
            state = _text(value, _TRACESTATE_MAX)
            if state is not None:
                states.append(state)
    if len(parents) != 1 or not next(iter(parents)):
        return None  # none, unreadable, or two that disagree
    carrier: dict[str, list[str]] = {TRACEPARENT: list(parents)}
    if states and sum(map(len, states)) + len(states) - 1 <= _TRACESTATE_MAX:
        carrier[TRACESTATE] = states
    try:
        context = _PROPAGATOR.extract(carrier)
    except Exception as err:  # noqa: BLE001 - a header must never stop the stream
        log.debug("traceparent %r not extracted: %r", carrier[TRACEPARENT][0][:80], err)
        return None
    parent = trace.get_current_span(context).get_span_context()
    return parent if parent.is_valid else None


def trace_headers(headers: Iterable[tuple[str, bytes | None]] | None, new_trace: bool) -> list[tuple[str, bytes]]:
    """The traceparent (and tracestate) of the s2s span for one input record: a child of the
    input's span, else (``new_trace``: ingress.tracing) the root of a new sampled trace, else none."""
    parent = parent_of(headers)
    if parent is not None:
        span = trace.SpanContext(trace_id=parent.trace_id, span_id=_IDS.generate_span_id(), is_remote=False,
                                 trace_flags=parent.trace_flags, trace_state=parent.trace_state)
    elif new_trace:
        span = trace.SpanContext(trace_id=_IDS.generate_trace_id(), span_id=_IDS.generate_span_id(),
                                 is_remote=False, trace_flags=_NEW_TRACE_FLAGS)
    else:
        return []
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(span)))
    return [(name, carrier[name].encode("ascii")) for name in (TRACEPARENT, TRACESTATE) if name in carrier]


def _text(value: bytes | None, limit: int) -> str | None:
    if not value or len(value) > limit:
        return None
    try:
        return value.decode("ascii")  # W3C trace context is printable ASCII
    except (UnicodeDecodeError, AttributeError):
        return None
