"""One batch of polled records on its way through the ingress: records -> plans -> translator
calls -> the output and dead-letter records that answer them (one per record, always).

The ingress hands the translators whole lists (docs/architecture.md: one handle call per message
is ~200x slower than one per list), split only per route and to the translator's max batch size.
Suspects (suspects.py) get calls of their own, marked ``alone``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from kafka.structs import TopicPartition

from .config import RouteConfig
from .messages import Limits, Reason, Rejection, Request, decode_value, encode_reply
from .models import DecodeItem, TranslateResult
from .out_records import OutRecord, answer, bare_dead_letter, dead_letter
from .routing import Router

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """A record that will be decoded by ``route``'s translator."""

    route: RouteConfig
    request: Request


Plan = Planned | Rejection


@dataclass
class TranslatorCall:
    """One handle call: the batch positions it covers and the future of its result."""

    route: RouteConfig
    indices: list[int]
    future: Future  # Future[TranslateResult]
    alone: bool = False
    # Per index, its item's place in the result; differs from 0, 1, ... only once records of
    # the call were dropped (PolledBatch.without): the translator still answers every item sent.
    slots: list[int] | None = None
    sent: int = -1  # items sent; -1: as many as indices

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = list(range(len(self.indices)))
        if self.sent < 0:
            self.sent = len(self.indices)

    def keeping(self, renumbered: dict[int, int]) -> TranslatorCall | None:
        """This call for the batch positions in ``renumbered`` (old -> new); None if none is left."""
        kept = [(renumbered[i], slot) for i, slot in zip(self.indices, self.slots, strict=True) if i in renumbered]
        if not kept:
            return None
        return TranslatorCall(self.route, [i for i, _ in kept], self.future, self.alone, [s for _, s in kept], self.sent)


# submit(route, items, alone) -> Future[TranslateResult]; the ingress wraps DeploymentHandles in it:
# alone=True goes to the route's quarantine deployment (one call at a time, never merged).
Submit = Callable[[RouteConfig, list[DecodeItem], bool], Future]


class TranslatorCrashed(RuntimeError):
    """A translator call failed because the replica process died during it (the ingress
    raises this for Ray's actor-died errors, so the poll loop need not import Ray).
    ``reason``: model_crash, or decode_timeout when the call had outlived the decode limit (the
    health check kills a replica whose decode hangs)."""

    def __init__(self, message: str, reason: Reason = Reason.MODEL_CRASH):
        super().__init__(message)
        self.reason = reason


class TranslatorTimeout(TimeoutError):
    """A translator call outlived ingress.call_timeout_s."""


@dataclass(frozen=True)
class UnreadableRecord:
    """Stands for a record the consumer could not parse: where it is, and why."""

    topic: str
    partition: int
    offset: int
    detail: str
    key: None = None
    value: None = None
    headers: tuple = ()
    timestamp: int = -1


def plan_records(records: Sequence, router: Router, limits: Limits) -> list[Plan]:
    """Decode and route every record; a Rejection for each that cannot be answered."""
    plans: list[Plan] = []
    for record in records:
        if isinstance(record, UnreadableRecord):
            plans.append(Rejection(Reason.UNREADABLE, record.detail, bare=True))
            continue
        decoded = decode_value(record.value, limits)
        if isinstance(decoded, Rejection):
            plans.append(decoded)
            continue
        route = router.route(record.topic, decoded.task)
        if isinstance(route, Rejection):
            plans.append(route)
            continue
        plans.append(Planned(router.serving(route, record.key, record.offset), decoded))
    return plans


def submit_calls(plans: Sequence[Plan], submit: Submit, alone: Collection[int] = ()) -> list[TranslatorCall]:
    """One call per route (a canary's model counts as its own) and chunk of at most that route's
    max_batch_size planned records; the positions in ``alone`` get a call each (suspects.py)."""
    by_route: dict[tuple[str, str], list[int]] = {}
    calls = []
    for i, plan in enumerate(plans):
        if not isinstance(plan, Planned):
            continue
        if i in alone:
            calls.append(TranslatorCall(plan.route, [i], submit(plan.route, [_decode_item(plan)], True), True))
        else:
            by_route.setdefault((plan.route.name, plan.route.model), []).append(i)
    for indices in by_route.values():
        route = plans[indices[0]].route
        for start in range(0, len(indices), route.max_batch_size):
            chunk = indices[start:start + route.max_batch_size]
            items = [_decode_item(plans[i]) for i in chunk]
            calls.append(TranslatorCall(route, chunk, submit(route, items, False)))
    return calls


def _decode_item(plan: Planned) -> DecodeItem:
    request, route = plan.request, plan.route
    return DecodeItem(text=request.text,
                      beam=request.beam if request.beam is not None else route.beam,
                      max_len=request.max_len if request.max_len is not None else route.max_len)


def first_offsets(records: Sequence) -> dict[TopicPartition, int]:
    """Per partition, the offset of the first of ``records`` (they are in offset order)."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    return first


class PolledBatch:
    """The records of one poll (in poll order), their plans and translator calls."""

    def __init__(self, records: Sequence, plans: Sequence[Plan], calls: Sequence[TranslatorCall]):
        assert len(records) == len(plans)
        self.records, self.plans, self.calls = list(records), list(plans), list(calls)

    def __len__(self) -> int:
        return len(self.records)

    def translated(self) -> bool:
        """True once every translator call finished (successfully or not)."""
        return all(call.future.done() for call in self.calls)

    def cancel(self) -> None:
        for call in self.calls:
            call.future.cancel()

    def failures(self) -> list[tuple[object, BaseException, bool]]:
        """(record, error, alone) for each record of a call that failed as a whole."""
        failed = [call for call in self.calls if call.future.done() and not call.future.cancelled()
                  and call.future.exception() is not None]
        return [(self.records[i], call.future.exception(), call.alone) for call in failed for i in call.indices]

    def first_offsets(self) -> dict[TopicPartition, int]:
        return first_offsets(self.records)

    def without(self, partitions: Collection[TopicPartition]) -> PolledBatch | None:
        """This batch less the records of ``partitions`` (None if nothing is left). Their calls
        run on, for the records that stay; what a dropped record's answer would have been is
        ignored, and its partition's next owner polls and decodes it again."""
        keep = [i for i, r in enumerate(self.records) if TopicPartition(r.topic, r.partition) not in partitions]
        if not keep:
            return None
        renumbered = {old: new for new, old in enumerate(keep)}
        calls = [call.keeping(renumbered) for call in self.calls]
        return PolledBatch([self.records[i] for i in keep], [self.plans[i] for i in keep],
                           [call for call in calls if call is not None])

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset after this batch's last record (what a commit stores)."""
        return {TopicPartition(r.topic, r.partition): r.offset + 1 for r in self.records}

    def outputs(self, dead_letter_topic: str, now_ms: int, max_bytes: int, tracing: bool = False) -> list[OutRecord]:
        """One answer or dead letter per record, in record order, each at most ``max_bytes``.
        Re-raises a failed call's exception: a call that failed as a whole (replica died,
        timeout) is retried, not dead-lettered. ``tracing``: ingress.tracing (tracing.py)."""
        results = self._results()
        out = []
        for i, (record, plan) in enumerate(zip(self.records, self.plans)):
            try:
                out.append(_output(record, plan, results.get(i), dead_letter_topic, now_ms, max_bytes, tracing))
            except Exception as err:  # noqa: BLE001 - a bug must not stall the partition
                log.exception("building the answer of %s/%d/%d failed", record.topic, record.partition, record.offset)
                rejection = Rejection(Reason.INTERNAL_ERROR, f"building its answer raised {err!r}", bare=True)
                out.append(bare_dead_letter(record, rejection, dead_letter_topic, tracing))
        return out

    def _results(self) -> dict[int, tuple[TranslateResult, int]]:
        by_index = {}
        for call in self.calls:
            result = call.future.result(timeout=0)
            if len(result.outcomes) != call.sent:
                raise RuntimeError(f"translator answered {len(result.outcomes)} of {call.sent} items")
            for i, slot in zip(call.indices, call.slots, strict=True):
                by_index[i] = (result, slot)
        return by_index


def _output(record, plan: Plan, result: tuple[TranslateResult, int] | None, dead_letter_topic: str,
            now_ms: int, max_bytes: int, tracing: bool = False) -> OutRecord:
    """The answer to one record, or its dead letter (bad input, model error, answer too large)."""
    if isinstance(plan, Rejection):
        if plan.bare:
            return bare_dead_letter(record, plan, dead_letter_topic, tracing)
        return dead_letter(record, None, plan, dead_letter_topic, max_bytes, tracing)
    translated, position = result
    decoded = translated.outcomes[position]
    if decoded.error is not None:
        return dead_letter(record, plan.request, Rejection(Reason.MODEL_ERROR, decoded.error), dead_letter_topic,
                           max_bytes, tracing)
    reply = answer(record, plan.request, plan.route.output_topic, encode_reply(plan.request, decoded.text, plan.route.task),
                   translated.model_name, translated.model_version, now_ms, tracing)
    if reply.size() > max_bytes:  # a key near the broker's limit: the answer cannot carry it
        too_large = Rejection(Reason.UNSENDABLE, f"its answer would be {reply.size()} bytes, over {max_bytes}")
        return dead_letter(record, plan.request, too_large, dead_letter_topic, max_bytes, tracing)
    return reply
