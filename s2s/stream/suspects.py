"""Records the ingress treats apart because something failed while it held them: the retry
budgets that make sure no record is retried forever.

    decode failures  a translator process died during a call holding the record (a crash, or
                     the health check killing a decode that outlived route.max_decode_s). From
                     then on the record is decoded alone (a call of its own to the route's
                     quarantine deployment, which takes one call at a time, so a crash there
                     blames exactly one record); after ``max_decode_failures`` such calls it is
                     dead-lettered (model_crash or decode_timeout).
    call timeouts    a call outlived ingress.call_timeout_s. The first ones blame nobody: the
                     wait may have been a queue, so the call is retried as it was (a decode that
                     truly hangs is killed by the health check before that timeout, which is a
                     decode failure above). A record in ``max_call_timeouts`` timed-out calls is
                     decoded alone from then on, and a timed-out call of its own counts as a
                     decode failure (decode_timeout): an ingress sends its quarantine calls one
                     at a time, so such a call waited behind at most one call of each other
                     ingress replica. Even a translator too stuck to be killed ends in a dead
                     letter, after at most max_call_timeouts + max_decode_failures calls.
    refusals         the broker refused the record's answer for a reason of the record's own
                     (too large, invalid, not authorized): the next try writes a dead letter
                     (unsendable), the one after a bare dead letter that copies nothing.

Suspects are cleared once their answer or dead letter is acknowledged, and forgotten with the
partitions this member gives up. Keys are (topic, partition, offset).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka.structs import TopicPartition

from .messages import Reason, Rejection

RecordId = tuple[str, int, int]


def record_id(record) -> RecordId:
    return record.topic, record.partition, record.offset


@dataclass
class Suspicion:
    decode_failures: int = 0
    reason: Reason = Reason.MODEL_CRASH
    unanswered: int = 0  # of the decode failures, calls of its own that outlived the call timeout
    refusals: int = 0
    refusal: str = ""  # the broker's last word on the record's answer


def _decode_failures_detail(held: Suspicion) -> str:
    """What the dead letter says of the calls that failed holding the record."""
    if not held.unanswered:
        what = "outlived the decode limit" if held.reason is Reason.DECODE_TIMEOUT else "died"
        return f"the translator process {what} in {held.decode_failures} calls holding it"
    deaths = held.decode_failures - held.unanswered
    died = f" and the translator process died in {deaths}" if deaths else ""
    return f"of {held.decode_failures} calls holding it, {held.unanswered} outlived ingress.call_timeout_s{died}"


class Suspects:
    def __init__(self, max_decode_failures: int, max_call_timeouts: int):
        self._max_decode_failures = max_decode_failures
        self._max_call_timeouts = max_call_timeouts
        self._held: dict[RecordId, Suspicion] = {}
        self._timeouts: dict[RecordId, int] = {}  # timed-out calls of records not (yet) held

    def __bool__(self) -> bool:
        return bool(self._held)

    def __contains__(self, record) -> bool:
        return record_id(record) in self._held

    def decode_failed(self, record, reason: Reason) -> None:
        """A process died in a call holding ``record`` (reason: model_crash or decode_timeout)."""
        held = self._held.setdefault(record_id(record), Suspicion())
        held.decode_failures += 1
        held.reason = reason

    def timed_out(self, record, alone: bool) -> None:
        """A call holding ``record`` outlived the call timeout; ``alone``: a call of its own."""
        if alone:
            self.decode_failed(record, Reason.DECODE_TIMEOUT)
            self._held[record_id(record)].unanswered += 1
            return
        rid = record_id(record)
        self._timeouts[rid] = self._timeouts.get(rid, 0) + 1
        if self._timeouts[rid] >= self._max_call_timeouts:
            del self._timeouts[rid]
            self._held.setdefault(rid, Suspicion())

    def refused(self, record, why: str) -> None:
        held = self._held.setdefault(record_id(record), Suspicion())
        held.refusals += 1
        held.refusal = why

    def screen(self, records: Sequence, plans: list) -> set[int]:
        """Replace, in ``plans``, the plan of each record over a budget by its dead letter's
        Rejection; return the positions of the others held here (to be decoded alone)."""
        alone = set()
        for i, record in enumerate(records):
            held = self._held.get(record_id(record))
            if held is None:
                continue
            rejection = self._rejection(held)
            if rejection is not None:
                plans[i] = rejection
            elif not isinstance(plans[i], Rejection):
                alone.add(i)
        return alone

    def _rejection(self, held: Suspicion) -> Rejection | None:
        if held.refusals:
            return Rejection(Reason.UNSENDABLE, f"the broker refused it {held.refusals} time(s): {held.refusal}",
                             bare=held.refusals > 1)
        if held.decode_failures >= self._max_decode_failures:
            return Rejection(held.reason, _decode_failures_detail(held))
        return None

    def clear(self, records: Iterable) -> None:
        """Their answers are acknowledged: nothing to hold against them any more."""
        for record in records:
            self._held.pop(record_id(record), None)
            self._timeouts.pop(record_id(record), None)

    def forget(self, gone: set[TopicPartition]) -> None:
        """Partitions another member owns now: this one would never clear their suspects."""
        def kept(rid: RecordId) -> bool:
            return TopicPartition(rid[0], rid[1]) not in gone

        self._held = {rid: s for rid, s in self._held.items() if kept(rid)}
        self._timeouts = {rid: n for rid, n in self._timeouts.items() if kept(rid)}

    def ids(self) -> set[RecordId]:
        return set(self._held)
