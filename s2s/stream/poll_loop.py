"""The ingress's poll loop: one consumer of the group, feeding translator calls and delivering
their answers in poll order.

    poll -> gather up to max_poll_records or batch_linger_ms -> plan (decode, route, screen
         suspects) -> submit a call per route chunk (suspects alone) -> ... keep polling ...
         -> head batches translated -> deliver (outputs + dead letters, through the Delivery)
         -> settle in the ledger -> commit (through the Delivery, every commit_interval_ms)

Rules this loop keeps (docs/architecture.md "Delivery"):
- an offset is committed only after its answer is acknowledged; any failure rewinds every
  partition to where the Delivery says it resumes (recover(): never past an unacknowledged
  record; in exactly-once mode the broker's committed offsets, after fencing);
- every input record is answered or dead-lettered: out_records.py makes a dead letter for any
  bytes, and every retry has a budget (suspects.py): a record in calls that killed or hung the
  translator, or whose answer the broker refuses, ends in the dead-letter topic with a reason;
- the loop never stops polling for longer than a flush/drain timeout, both validated to fit in
  the session timeout and max.poll.interval.ms; while too much is in flight it pauses its
  partitions and keeps polling, so the consumer stays in the group;
- before partitions are revoked (rebalance, scale-down, shutdown) what is acknowledged is
  committed; in-flight work is finished first within ingress.drain_timeout_s (shutdown, eager
  rebalances) or, for the partitions a cooperative rebalance moves, dropped; what is not
  delivered is left uncommitted and so redelivered to the next owner.

Observation: an ``observer`` (telemetry.IngressTelemetry in a replica) hears of each poll and
delivery, once per batch, and of the lag: every LAG_EVERY_S the loop measures, per partition it
owns, the last fetched high watermark minus the first unacknowledged offset (no broker call).
The ingress reports the sum to Serve's autoscaler (lag_policy.py).

Threading: every consumer call happens on the loop's thread, except the rebalance listener,
which kafka-python 3 runs on the consumer's IO thread *while the loop thread is blocked inside
poll() or close()*; the two therefore never touch the ledger at the same time.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import CorruptRecordError, InconsistentGroupProtocolError, KafkaError
from kafka.structs import TopicPartition

from .polled import (PolledBatch, Submit, TranslatorCrashed, TranslatorTimeout, UnreadableRecord, first_offsets,
                     plan_records, submit_calls)
from .config import StreamConfig
from .delivery import Delivery, DeliveryDeferred, DeliveryError
from .ledger import OffsetLedger, commit_map
from .rebalancing import cooperative_rebalance_in_progress, poll_kept
from .routing import Router
from .suspects import Suspects

log = logging.getLogger(__name__)

BUSY_POLL_MS = 5     # poll wait while answers may be ready: bounds the latency the loop adds
PAUSED_WAIT_S = 0.1  # longest wait for an answer while paused, between polls that keep the group
RETRY_BACKOFF_S = 0.5
LAG_EVERY_S = 1.0    # how often the lag is measured (it feeds the autoscaler and the gauges)
# What kafka-python's poll() raises, once, for a record it cannot parse (then it stalls that partition).
UNPARSABLE = (CorruptRecordError, UnicodeDecodeError)


class AssignorMismatch(RuntimeError):
    """The group's members use assignors of different kinds; the broker refuses the join."""


class Observer(Protocol):
    """What the loop reports, once per batch (telemetry.IngressTelemetry)."""

    def polled(self, records: list) -> None: ...

    def delivered(self, records: list, outputs: list, acked_ms: int) -> None: ...

    def lag(self, lags: dict[TopicPartition, int]) -> None: ...


@dataclass
class LoopStats:
    """Counters the ingress reports (and the tests read)."""

    polled: int = 0
    answered: int = 0
    dead_lettered: int = 0
    deliveries: int = 0
    rewinds: int = 0
    commits: int = 0
    commit_failures: int = 0
    revocations: int = 0
    deferrals: int = 0   # deliveries put off while the group generation was unknown
    polled_in_rebalance: int = 0  # records of kept partitions fetched while the group rebalanced
    last_error: str = ""


class PollLoop:
    """Runs ``run(stop)`` on its own thread; ``submit`` and ``delivery`` are injected."""

    def __init__(self, config: StreamConfig, submit: Submit, make_consumer: Callable[[], KafkaConsumer],
                 delivery: Delivery, observer: Observer, now: Callable[[], float] = time.monotonic):
        self._config = config
        self._kafka = config.kafka
        self._router = Router(config.routes)
        self._submit = submit
        self._make_consumer = make_consumer
        self._delivery = delivery
        self._now = now
        self._ledger = OffsetLedger()
        self._gathering: list = []  # polled records not yet sent to a translator
        self._gathering_since = 0.0
        self._suspects = Suspects(config.ingress.max_decode_crashes, config.ingress.max_call_timeouts)
        self._unrecovered: dict[TopicPartition, int] | None = None  # positions still to seek to (recover failed)
        self._consumer: KafkaConsumer | None = None
        self._last_commit = 0.0
        self._observer = observer
        self._lag_measured = float("-inf")
        self._stop = threading.Event()
        self.stats = LoopStats()
        self.lag = 0         # records behind the log end on the owned partitions, last measured
        self.partitions = 0  # partitions of the largest input topic: more consumers would idle

    # -- lifecycle ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, then drain, commit and leave the group."""
        self._stop = stop
        self._consumer = self._make_consumer()
        self._consumer.subscribe(self._router.topics(), listener=DrainOnRevoke(self))
        try:
            while not stop.is_set():
                self._step_in_group()
            self._drain(self._now() + self._config.ingress.drain_timeout_s)
            self._commit(force=True)
        finally:
            self._close()

    def _step_in_group(self) -> None:
        try:
            self.step()
        except InconsistentGroupProtocolError as err:
            # Retrying cannot help, and kafka-python's own message names neither side.
            raise AssignorMismatch(
                f"consumer group {self._kafka.group_id!r} refused this member: its other members use a "
                f"partition assignor of another kind than kafka.assignor {self._kafka.assignor!r} "
                "(cooperative-sticky cannot share a group with range or roundrobin); give every member "
                "of the group the same kafka.assignor, or use another group_id") from err

    def _close(self) -> None:
        # close() calls the listener's revoke, which finds nothing left in flight.
        try:
            self._consumer.close(timeout_ms=self._kafka.request_timeout_ms)
        finally:
            self._delivery.close()

    # -- one turn of the loop -----------------------------------------------------------------

    def step(self) -> None:
        """Poll once, start translating what is due, deliver what is ready, commit, pace."""
        if self._unrecovered is not None:
            self._poll_in_place()
            self._recover(self._unrecovered)
            return
        busy = self._ledger.has_pending() or self._gathering
        rejoining = cooperative_rebalance_in_progress(self._consumer)
        if self._paused_for_answers():
            if not rejoining:  # a rejoin's poll waits itself, and the join's answer must find it waiting
                self._await_head()
            timeout_ms = 0  # nothing to fetch while paused; the poll keeps the consumer in the group
        else:
            timeout_ms = BUSY_POLL_MS if busy else self._kafka.poll_timeout_ms
        room = self._kafka.max_poll_records - len(self._gathering)
        self._gather(self._poll(timeout_ms, max(1, room)))
        try:
            self._submit_gathered()
            self._deliver_ready()
        except DeliveryDeferred as err:
            self.stats.deferrals += 1
            log.info("delivery deferred: %s", err)
            if not rejoining:  # rejoining, the next poll is the pause (rebalancing.py: why not a sleep)
                self._stop.wait(RETRY_BACKOFF_S)
        except Exception as err:  # noqa: BLE001 - whatever failed, redo it from Kafka
            self._rewind(err)
        self._commit()
        self._pace()
        self._measure_lag()

    def _poll_in_place(self) -> None:
        """Poll to stay in the group, every partition paused. A partition assigned during the
        poll (a rebalance runs inside it) may still hand out records: each is sought back to its
        first one, so none is skipped."""
        self._consumer.pause(*self._consumer.assignment())
        records = self._poll(self._kafka.poll_timeout_ms, 1)
        for tp, offset in first_offsets(records).items():
            self._consumer.seek(tp, offset)
        self._consumer.pause(*self._consumer.assignment())

    def _poll(self, timeout_ms: int, max_records: int) -> list:
        try:
            polled, rebalancing = poll_kept(self._consumer, timeout_ms, max_records)
        except UNPARSABLE as err:
            return self._poll_around_unparsable(err)
        records = [record for batch in polled.values() for record in batch]
        if rebalancing:
            self.stats.polled_in_rebalance += len(records)
        return records

    def _poll_around_unparsable(self, err: Exception) -> list:
        """The broker accepts records kafka-python cannot parse (a header key that is not UTF-8).
        kafka-python 3.0.12's poll() then raises once and keeps the failed records as its
        fetcher's current ones, so it never fetches that partition again: a silent stall. The
        record at that partition's position is dead-lettered (bare: its bytes cannot be read)
        and skipped; the seek past it also clears the stuck fetch."""
        current = getattr(getattr(self._consumer, "_fetcher", None), "_next_partition_records", None)
        tp = getattr(current, "topic_partition", None)
        if tp is None or tp not in self._consumer.assignment():
            log.error("poll() failed on a record it cannot parse, partition unknown: %r", err)
            self.stats.last_error = repr(err)
            return []
        offset = self._consumer.position(tp)
        log.warning("%s-%d offset %d cannot be parsed (%r): dead-lettered and skipped", tp.topic, tp.partition,
                    offset, err)
        self._consumer.seek(tp, offset + 1)
        return [UnreadableRecord(tp.topic, tp.partition, offset, f"the consumer cannot parse it: {err!r}")]

    def _gather(self, records: list) -> None:
        if records and not self._gathering:
            self._gathering_since = self._now()
        self._gathering.extend(records)
        self.stats.polled += len(records)
        if records:
            self._observer.polled(records)

    def _submit_gathered(self, force: bool = False) -> None:
        """Send the gathered records to the translators once there are max_poll_records of them
        or the oldest waited batch_linger_ms: a slow trickle still makes lists, not single calls."""
        if not self._gathering:
            return
        full = len(self._gathering) >= self._kafka.max_poll_records
        lingered = self._now() - self._gathering_since >= self._kafka.batch_linger_ms / 1000
        if full or lingered or force:
            records, self._gathering = self._gathering, []
            plans = plan_records(records, self._router, self._config.limits)
            alone = self._suspects.screen(records, plans)
            self._ledger.add(PolledBatch(records, plans, submit_calls(plans, self._submit, alone)))

    def _deliver_ready(self) -> int:
        """Deliver the translated batches at the head of the ledger; returns how many. A record
        the broker refused is made a suspect (its next try is a dead letter) before re-raising."""
        ready = self._ledger.ready()
        if not ready:
            return 0
        now_ms = int(time.time() * 1000)
        records = [r for batch in ready for r in batch.records]
        outputs = [out for batch in ready for out in
                   batch.outputs(self._kafka.dead_letter_topic, now_ms, self._kafka.max_request_bytes,
                                 self._config.ingress.tracing)]
        try:
            committed = self._delivery.deliver(outputs, self._ledger.offsets_after(ready), self._consumer)
        except DeliveryError as err:
            for position, why in err.refused.items():
                self._suspects.refused(records[position], why)
            raise
        self._ledger.settle(len(ready))
        self._ledger.mark_committed(committed)
        self._suspects.clear(records)
        dead = sum(1 for out in outputs if out.topic == self._kafka.dead_letter_topic)
        self.stats.dead_lettered += dead
        self.stats.answered += len(outputs) - dead
        self.stats.deliveries += 1
        self._observer.delivered(records, outputs, int(time.time() * 1000))
        return len(ready)

    def _rewind(self, err: BaseException) -> None:
        """Drop what is in flight and seek back to where the Delivery says to resume. The
        records of calls whose translator died become suspects (decoded alone from now on);
        those of timed-out calls spend their timeout budget (suspects.py)."""
        log.warning("rewinding in-flight batches after %r", err)
        self.stats.rewinds += 1
        self.stats.last_error = repr(err)
        for batch in self._ledger.batches():
            for record, failure, alone in batch.failures():
                if isinstance(failure, TranslatorCrashed):
                    self._suspects.decode_failed(record, failure.reason)
                elif isinstance(failure, TranslatorTimeout):
                    self._suspects.timed_out(record, alone)
        self._seek_back()
        self._stop.wait(RETRY_BACKOFF_S)  # a failing broker or translator is not hammered

    def _seek_back(self) -> None:
        """Forget in-flight and gathered records; every partition they touched seeks back to
        its first unacknowledged offset (gathered records come after all in-flight ones)."""
        positions = self._ledger.rewind()
        for tp, offset in first_offsets(self._gathering).items():
            positions.setdefault(tp, offset)
        self._gathering = []
        self._recover(positions)

    def _recover(self, positions: dict[TopicPartition, int]) -> None:
        """Seek to where the Delivery says each partition resumes. Until it can say (exactly-once
        with the brokers away), every partition stays paused and step() asks again."""
        assigned = self._consumer.assignment()
        positions = {tp: offset for tp, offset in positions.items() if tp in assigned}
        try:
            positions, committed = self._delivery.recover(self._consumer, positions)
        except (KafkaError, DeliveryError, OSError, TimeoutError) as err:
            log.warning("cannot tell where to resume yet (%r); partitions stay paused", err)
            self.stats.last_error = repr(err)
            self._unrecovered = positions
            self._consumer.pause(*assigned)
            self._stop.wait(RETRY_BACKOFF_S)
            return
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
        self._ledger.reposition(positions)
        self._ledger.mark_committed(committed)
        self._unrecovered = None

    def _commit(self, force: bool = False) -> None:
        """Store the safe offsets the Delivery did not commit itself, at most every
        commit_interval_ms."""
        due = self._now() - self._last_commit >= self._kafka.commit_interval_ms / 1000
        offsets = self._ledger.uncommitted()
        if not offsets or not (force or due):
            return
        self._last_commit = self._now()
        try:
            self._delivery.commit(self._consumer, offsets, self._kafka.request_timeout_ms)
        except KafkaError as err:  # broker away or group rebalancing: the offsets are kept, retried
            self.stats.commit_failures += 1
            log.warning("offset commit failed (will retry): %r", err)
            return
        self._ledger.mark_committed(offsets)
        self.stats.commits += 1

    def _over_in_flight_limit(self) -> bool:
        return self._ledger.in_flight() + len(self._gathering) >= self._kafka.max_in_flight

    def _paused_for_answers(self) -> bool:
        """True while _pace holds every partition paused and only the head batch's answers can
        move the loop on. Over the limit with nothing gathered, the ledger holds at least one
        batch (max_in_flight >= 1)."""
        return self._over_in_flight_limit() and not self._gathering

    def _await_head(self) -> None:
        """Wait, woken the moment they finish, for the head batch's calls (at most
        PAUSED_WAIT_S): under backpressure a 5 ms poll loop only burnt CPU the decoders needed."""
        concurrent.futures.wait([call.future for call in self._ledger.head().calls], timeout=PAUSED_WAIT_S)

    def _pace(self) -> None:
        """Pause every partition while too much is in flight, or while it is not known where
        they resume; resume below the limit."""
        if self._over_in_flight_limit() or self._unrecovered is not None:
            running = self._consumer.assignment() - self._consumer.paused()
            if running:
                self._consumer.pause(*running)
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())

    def _measure_lag(self) -> None:
        """Every LAG_EVERY_S: per owned partition, high watermark minus the first offset not yet
        acknowledged (so records in flight count as lag until their answers are acked).

        The high watermark is the one the last fetch response carried: no broker round trip. A
        partition never polled since it was assigned counts 0 until its first records arrive."""
        if self._now() - self._lag_measured < LAG_EVERY_S:
            return
        self._lag_measured = self._now()
        unacked = {**first_offsets(self._gathering), **self._ledger.safe_offsets()}
        lags = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lags[tp] = max(0, highwater - unacked.get(tp, highwater))
        self.lag = sum(lags.values())
        try:  # metadata is cached; only a topic missing from it costs a broker call
            self.partitions = max((len(self._consumer.partitions_for_topic(t) or ()) for t in self._router.topics()),
                                  default=0)
        except KafkaError as err:  # a measurement must not stop the stream: keep the last count
            log.debug("partition count unavailable: %r", err)
        self._observer.lag(lags)

    # -- drain: shutdown and rebalance --------------------------------------------------------

    def _drain(self, deadline: float, only: set[TopicPartition] | None = None) -> None:
        """Finish in-flight batches in order until none is left (with ``only``: none that
        touches those partitions) or the deadline passes; the rest is dropped uncommitted
        (redelivered), partitions seek back to it."""
        self._submit_gathered(force=True)
        while self._must_drain(only) and self._now() < deadline:
            head = self._ledger.head()
            concurrent.futures.wait([call.future for call in head.calls], timeout=max(0.0, deadline - self._now()))
            try:
                if not head.translated() or not self._deliver_ready():
                    break
            except Exception as err:  # noqa: BLE001 - give up draining; leftovers are redelivered
                log.warning("drain stopped: %r", err)
                break
        if self._must_drain(only):
            log.warning("drain left %d records in flight; they will be redelivered", self._ledger.in_flight())
            self._seek_back()

    def _must_drain(self, only: set[TopicPartition] | None) -> bool:
        if only is None:
            return self._ledger.has_pending()
        return any(only.intersection(batch.first_offsets()) for batch in self._ledger.batches())

    def before_revoke(self, revoked: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Called by the listener before partitions go; returns the offsets still to commit for
        them (at-least-once; exactly-once committed them in its transactions).

        Eager assignors revoke every partition: in-flight work is drained (finished, delivered),
        since this member would otherwise redo most of it once it gets its share back. The
        cooperative one revokes only the partitions that move: what is already translated is
        delivered, and their records still being translated are dropped instead of waited for;
        waiting would hold kafka-python's IO thread, and the group's rebalance with it, for
        every batch before them in poll order. Dropped records were never answered or
        committed, so their next owner polls and answers them: nothing lost, nothing answered
        twice. The kept partitions' work goes on."""
        revoked = set(revoked)
        self.stats.revocations += 1
        if self._kafka.assignor == "cooperative-sticky":
            self._hand_over(revoked)
        else:
            self._drain(self._now() + self._config.ingress.drain_timeout_s, only=revoked)
        uncommitted = self._ledger.uncommitted()
        self._forget(revoked)
        return {tp: off for tp, off in uncommitted.items() if tp in revoked}

    def _hand_over(self, partitions: set[TopicPartition]) -> None:
        """Deliver the translated head of the ledger, then drop the rest of ``partitions``'
        records (in flight and gathered). A failed delivery leaves its batches in flight: the
        loop's next step retries or rewinds them as after any failure."""
        try:
            self._deliver_ready()
        except Exception as err:  # noqa: BLE001 - the moving records are dropped all the same
            log.warning("delivery before a cooperative revoke failed: %r", err)
        dropped = self._ledger.drop(partitions)
        gathered = len(self._gathering)
        self._gathering = [r for r in self._gathering if TopicPartition(r.topic, r.partition) not in partitions]
        dropped += gathered - len(self._gathering)
        if dropped:
            log.info("%d records of the moving partitions dropped; their next owner answers them", dropped)

    def on_lost(self, lost: Iterable[TopicPartition]) -> None:
        """Evicted from the group: nothing may be committed; drop it all."""
        self._ledger.rewind()
        self._gathering = []
        self._forget(set(lost))

    def _forget(self, gone: set[TopicPartition]) -> None:
        """Partitions another member owns now: their offsets, suspects and pending seeks."""
        self._ledger.forget(gone)
        self._suspects.forget(gone)
        if self._unrecovered is not None:
            self._unrecovered = {tp: off for tp, off in self._unrecovered.items() if tp not in gone}

    @property
    def consumer(self) -> KafkaConsumer | None:
        return self._consumer


class DrainOnRevoke(AsyncConsumerRebalanceListener):
    """Finish and commit in-flight work before giving partitions up.

    Async so that the commit can be awaited on kafka-python's IO loop (a sync listener may not
    block on consumer calls there). The drain itself blocks that loop for at most
    ingress.drain_timeout_s, which is validated to be well under the session timeout.
    """

    def __init__(self, worker: PollLoop):
        self._worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        if not revoked:
            return
        offsets = self._worker.before_revoke(revoked)
        if not offsets:
            return
        try:
            await self._worker.consumer.commit_async(commit_map(offsets))
            self._worker.stats.commits += 1
        except Exception as err:  # noqa: BLE001 - the next owner redelivers: duplicates, not loss
            log.warning("commit before revoke failed: %r", err)

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))

    async def on_partitions_lost(self, lost) -> None:
        self._worker.on_lost(lost)
