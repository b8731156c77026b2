"""One batch of polled records on its way through the ingress: records -> plans -> translator
calls -> the output and dead-letter records that answer them.

The ingress hands the translators whole lists (DESIGN.md: one handle call per message is ~200x
slower than one per list), split only per route and to the translator's max batch size.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from kafka.structs import TopicPartition

from . import headers as hdr
from .config import RouteConfig
from .messages import Limits, Reason, Rejection, Request, decode_value, encode_reply
from .models import DecodeItem, TranslateResult
from .routing import Router


@dataclass(frozen=True)
class Planned:
    """A record that will be decoded by ``route``'s translator."""

    route: RouteConfig
    request: Request


Plan = Planned | Rejection


@dataclass(frozen=True)
class OutRecord:
    """A record to produce: an answer on an output topic or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers


@dataclass
class TranslatorCall:
    """One handle call: the batch positions it covers and the future of its result."""

    route: RouteConfig
    indices: list[int]
    future: Future  # Future[TranslateResult]


# submit(route, items) -> Future[TranslateResult]; the ingress wraps a DeploymentHandle in it.
Submit = Callable[[RouteConfig, list[DecodeItem]], Future]


class TranslatorCrashed(RuntimeError):
    """A translator call failed because the replica process died during it (the ingress
    raises this for Ray's actor-died errors, so the poll loop need not import Ray)."""


def plan_records(records: Sequence, router: Router, limits: Limits) -> list[Plan]:
    """Decode and route every record; a Rejection for each that cannot be answered."""
    plans: list[Plan] = []
    for record in records:
        decoded = decode_value(record.value, limits)
        if isinstance(decoded, Rejection):
            plans.append(decoded)
            continue
        route = router.route(record.topic, decoded.task)
        plans.append(route if isinstance(route, Rejection) else Planned(route, decoded))
    return plans


def submit_calls(plans: Sequence[Plan], submit: Submit, isolate: Collection[int] = ()) -> list[TranslatorCall]:
    """One call per route and chunk of at most that route's max_batch_size planned records;
    the positions in ``isolate`` get a call each (suspects of a translator crash)."""
    by_route: dict[str, list[int]] = {}
    calls = []
    for i, plan in enumerate(plans):
        if not isinstance(plan, Planned):
            continue
        if i in isolate:
            calls.append(TranslatorCall(plan.route, [i], submit(plan.route, [_decode_item(plan)])))
        else:
            by_route.setdefault(plan.route.name, []).append(i)
    for indices in by_route.values():
        route = plans[indices[0]].route
        for start in range(0, len(indices), route.max_batch_size):
            chunk = indices[start:start + route.max_batch_size]
            items = [_decode_item(plans[i]) for i in chunk]
            calls.append(TranslatorCall(route, chunk, submit(route, items)))
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

    def crashed_records(self) -> list:
        """The records of calls that failed because the translator process died."""
        crashed = [call for call in self.calls if call.future.done() and not call.future.cancelled()
                   and isinstance(call.future.exception(), TranslatorCrashed)]
        return [self.records[i] for call in crashed for i in call.indices]

    def first_offsets(self) -> dict[TopicPartition, int]:
        return first_offsets(self.records)

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset after this batch's last record (what a commit stores)."""
        return {TopicPartition(r.topic, r.partition): r.offset + 1 for r in self.records}

    def outputs(self, dead_letter_topic: str, now_ms: int) -> list[OutRecord]:
        """Answers and dead letters, in record order. Re-raises a failed call's exception:
        a call that failed as a whole (replica died, timeout) is retried, not dead-lettered."""
        results = self._results()
        out = []
        for i, (record, plan) in enumerate(zip(self.records, self.plans)):
            if isinstance(plan, Rejection):
                out.append(_dead_letter(record, None, plan, dead_letter_topic))
                continue
            result, position = results[i]
            decoded = result.outcomes[position]
            if decoded.error is not None:
                rejection = Rejection(Reason.MODEL_ERROR, decoded.error)
                out.append(_dead_letter(record, plan.request, rejection, dead_letter_topic))
            else:
                out.append(_answer(record, plan, decoded.text, result, now_ms))
        return out

    def _results(self) -> dict[int, tuple[TranslateResult, int]]:
        by_index = {}
        for call in self.calls:
            result = call.future.result(timeout=0)
            if len(result.outcomes) != len(call.indices):
                raise RuntimeError(f"translator answered {len(result.outcomes)} of {len(call.indices)} items")
            for position, i in enumerate(call.indices):
                by_index[i] = (result, position)
        return by_index


def _answer(record, plan: Planned, text: str, result: TranslateResult, now_ms: int) -> OutRecord:
    corr = hdr.correlation_id(record, plan.request)
    headers = hdr.output_headers(record, corr, result.model_name, result.model_version, now_ms)
    return OutRecord(plan.route.output_topic, record.key, encode_reply(plan.request, text, plan.route.task), headers)


def _dead_letter(record, request: Request | None, rejection: Rejection, topic: str) -> OutRecord:
    corr = hdr.correlation_id(record, request)
    headers = hdr.dead_letter_headers(record, corr, rejection.reason, rejection.detail)
    # Kafka refuses a record with neither key nor value; an empty value stands for "none".
    value = record.value if record.value is not None or record.key is not None else b""
    return OutRecord(topic, record.key, value, headers)
