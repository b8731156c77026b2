"""The poll loop's delivery rules, with a scripted consumer, delivery and translator."""
import asyncio
import itertools
import threading
import time
from concurrent.futures import Future

import pytest
from kafka.structs import TopicPartition

from s2s.stream import poll_loop as poll_loop_module
from s2s.stream.polled import TranslatorCrashed, TranslatorTimeout
from s2s.stream.config import stream_config_from_dict
from s2s.stream.poll_loop import DrainOnRevoke, PollLoop

from .fakes import FakeConsumer, FakeDelivery, FakeObserver, FakeTranslator, records

P0, P1 = TopicPartition("in", 0), TopicPartition("in", 1)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(poll_loop_module, "RETRY_BACKOFF_S", 0)


def config(**kafka):
    settings = {"dead_letter_topic": "dlq", "max_poll_records": 4, "max_in_flight": 4, "commit_interval_ms": 1,
                **kafka}
    return stream_config_from_dict({
        "kafka": settings, "ingress": {"drain_timeout_s": 0.2},
        "routes": [{"name": "up", "input_topic": "in", "output_topic": "out", "model": "m"}]})


def make_worker(polls, translator=None, delivery=None, **kafka):
    """A worker wired to fakes, as run() leaves it before its first step."""
    consumer = FakeConsumer(polls, {P0, P1})
    delivery = delivery or FakeDelivery()
    translator = translator or FakeTranslator()
    ticks = itertools.count(start=1000.0, step=1.0)  # every clock read is one second later: intervals are due
    worker = PollLoop(config(**kafka), translator, lambda: consumer, delivery, FakeObserver(),
                          now=lambda: next(ticks))
    worker._consumer = consumer
    return worker, consumer, delivery, translator


def test_answers_are_delivered_in_order_then_committed():
    polls = [records("in", 0, 0, [b"a", b"b"]) + records("in", 1, 0, [b"\xff"]), records("in", 0, 2, [b"c"])]
    worker, consumer, delivery, _ = make_worker(polls)
    worker.step()
    worker.step()
    assert delivery.values("out") == [b"A", b"B", b"C"]
    assert delivery.values("dlq") == [b"\xff"]
    assert consumer.commits == [{P0: 2, P1: 1}, {P0: 3}]  # only what changed is committed again
    assert (worker.stats.answered, worker.stats.dead_lettered) == (3, 1)


def test_nothing_is_committed_before_delivery_succeeds_and_a_failure_rewinds():
    polled = records("in", 0, 5, [b"a", b"b"])
    worker, consumer, delivery, _ = make_worker([polled, polled])  # Kafka hands them out again
    delivery.fail_next = 1
    worker.step()
    assert consumer.seeks == [(P0, 5)] and delivery.delivered == []
    assert consumer.commits in ([], [{P0: 5}])  # at most the starting position
    worker.step()
    assert delivery.values("out") == [b"A", b"B"]
    assert consumer.commits[-1] == {P0: 7}
    assert worker.stats.rewinds == 1 and "broker said no" in worker.stats.last_error


def test_a_failed_translator_call_rewinds_instead_of_dead_lettering():
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 1, 0, [b"a"])], translator)
    worker.step()
    translator.release(RuntimeError("replica died"))
    worker.step()
    assert consumer.seeks == [(P1, 0)]
    assert delivery.delivered == []


class FailingTranslator(FakeTranslator):
    """Every call holding the text ``bad`` fails with ``error()``, as if the replica process had
    died in it (or it had timed out)."""

    def __init__(self, bad="crash", error=lambda: TranslatorCrashed("translator-up died during a call")):
        super().__init__()
        self.bad, self.error = bad, error

    def __call__(self, route, items, alone=False):
        if not any(item.text == self.bad for item in items):
            return super().__call__(route, items, alone)
        self.calls.append((route.name, list(items)))
        self.alone.append(alone)
        future: Future = Future()
        future.set_exception(self.error())
        return future


def test_a_record_that_keeps_killing_the_translator_is_decoded_alone_then_dead_lettered():
    polled = records("in", 0, 0, [b"a", b"crash", b"b"])
    translator = FailingTranslator()
    worker, consumer, delivery, _ = make_worker([polled] * 4, translator)  # redelivered after each rewind
    for _ in range(4):
        worker.step()
    assert [len(items) for _, items in translator.calls] == [3, 1, 1, 1, 1, 1, 1, 1, 1]
    assert translator.alone == [False] + [True] * 8  # suspects go to the quarantine, one call each
    assert delivery.values("out") == [b"A", b"B"]
    (dead,) = delivery.records("dlq")
    assert dead.value == b"crash" and dict(dead.headers)["s2s-error-reason"] == b"model_crash"
    assert consumer.commits[-1] == {P0: 3} and not worker._suspects


def test_a_record_whose_decode_keeps_hanging_is_dead_lettered_as_decode_timeout():
    from s2s.stream.messages import Reason

    translator = FailingTranslator(bad="hang", error=lambda: TranslatorCrashed("killed", Reason.DECODE_TIMEOUT))
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a", b"hang"])] * 4, translator)
    for _ in range(4):
        worker.step()
    assert delivery.values("out") == [b"A"]
    (dead,) = delivery.records("dlq")
    assert dead.value == b"hang" and dict(dead.headers)["s2s-error-reason"] == b"decode_timeout"


def test_a_timed_out_call_blames_nobody_and_is_retried_as_it_was():
    # Isolating the records of timed-out calls made them queue one at a time in the quarantine,
    # where more calls timed out: a crashed translator then slowed the whole stream to a crawl.
    translator = FailingTranslator(bad="slow", error=lambda: TranslatorTimeout("no answer"))
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a", b"slow"])] * 2, translator)
    worker.step()
    assert worker.stats.rewinds == 1 and not worker._suspects
    translator.bad = None  # the queue it waited in drained
    worker.step()
    assert translator.alone == [False, False] and delivery.values("out") == [b"A", b"SLOW"]


def test_a_record_whose_calls_keep_timing_out_is_decoded_alone_then_dead_lettered():
    # A translator too stuck for its health check to kill answered nothing, ever: each call
    # timed out and was retried as it was, with no end, while the lag grew.
    translator = FailingTranslator(bad="stuck", error=lambda: TranslatorTimeout("no answer"))
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a", b"stuck"])] * 7, translator)
    for _ in range(7):
        worker.step()
    # 3 timed-out calls as a batch, then both alone: 3 more for "stuck" (each time a's answer is
    # rewound with it), then a dead letter for "stuck" and the answer for "a"
    assert [len(items) for _, items in translator.calls] == [2, 2, 2] + [1] * 7
    assert translator.alone == [False] * 3 + [True] * 7
    assert delivery.values("out") == [b"A"]
    (dead,) = delivery.records("dlq")
    headers = dict(dead.headers)
    assert dead.value == b"stuck" and headers["s2s-error-reason"] == b"decode_timeout"
    assert b"3 outlived ingress.call_timeout_s" in headers["s2s-error-detail"]
    assert consumer.commits[-1] == {P0: 2} and not worker._suspects and worker.stats.rewinds == 6


def test_suspects_of_a_partition_given_up_are_forgotten():
    translator = FailingTranslator()
    worker, consumer, _, _ = make_worker([records("in", 0, 0, [b"a", b"crash"]), records("in", 1, 0, [b"c", b"d"])],
                                         translator)
    worker.step()
    assert worker._suspects.ids() == {("in", 0, 0), ("in", 0, 1)}
    worker.before_revoke({P0})
    assert not worker._suspects
    worker.step()
    assert [len(items) for _, items in translator.calls][-1] == 2  # P1's records in one call again


def test_a_call_that_fails_for_another_reason_makes_no_suspects():
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a", b"b"])] * 2, translator)
    worker.step()
    translator.release(RuntimeError("replica unavailable"))
    worker.step()
    assert worker.stats.rewinds == 1 and not worker._suspects
    worker.step()
    assert [len(items) for _, items in translator.calls][-1] == 2  # still one call for both


def test_an_answer_the_broker_refuses_becomes_a_dead_letter_then_a_bare_one():
    polled = records("in", 0, 0, [b"a", b"big"])
    worker, consumer, delivery, _ = make_worker([polled] * 3)
    delivery.refuse = {b"BIG"}
    worker.step()  # the answer "BIG" is refused: rewind
    assert worker.stats.rewinds == 1 and delivery.delivered == []
    delivery.refuse = {b"BIG", b"big"}  # ...and so is a full copy of the input
    worker.step()
    assert worker.stats.rewinds == 2
    worker.step()  # the bare dead letter carries nothing of the input
    assert delivery.values("out") == [b"A"]
    (dead,) = delivery.records("dlq")
    headers = dict(dead.headers)
    assert dead.value == b"" and dead.key is None and headers["s2s-error-reason"] == b"unsendable"
    assert headers["s2s-original-size"] == b"key=2 value=3 headers=0" and consumer.commits[-1] == {P0: 2}


def test_exactly_once_resumes_where_the_delivery_says_after_a_failure():
    delivery = FakeDelivery(commits_offsets=True)
    delivery.fail_next = 1
    worker, consumer, _, _ = make_worker([records("in", 0, 4, [b"a"])] * 2, delivery=delivery)
    worker.step()
    assert delivery.recovered == [{P0: 4}] and consumer.seeks == [(P0, 4)]
    worker.step()
    assert delivery.values("out") == [b"A"] and consumer.commits == []


def test_while_the_delivery_cannot_say_where_to_resume_partitions_stay_paused():
    from kafka.errors import KafkaTimeoutError

    delivery = FakeDelivery(commits_offsets=True)
    delivery.fail_next = 1
    worker, consumer, _, _ = make_worker([records("in", 0, 4, [b"a"])] * 2, delivery=delivery)
    answers = iter([KafkaTimeoutError("brokers away"), None])

    def recover(consumer_, positions):
        error = next(answers)
        if error:
            raise error
        return {P0: 5}, {P0: 5}  # an unknown-outcome transaction had committed after all

    delivery.recover = recover
    worker.step()
    assert consumer.paused_set == {P0, P1} and consumer.seeks == []
    worker.step()
    assert consumer.seeks[-1] == (P0, 5) and worker._unrecovered is None


def test_records_polled_while_recovering_are_sought_back_not_skipped():
    from kafka.errors import KafkaTimeoutError

    delivery = FakeDelivery(commits_offsets=True)
    delivery.fail_next = 1
    worker, consumer, _, _ = make_worker([records("in", 0, 4, [b"a"]), records("in", 1, 9, [b"new"])],
                                         delivery=delivery)
    answers = iter([KafkaTimeoutError("brokers away"), None])

    def recover(consumer_, positions):
        error = next(answers)
        if error:
            raise error
        return positions, positions

    delivery.recover = recover
    worker.step()  # delivery fails, recovery fails: paused
    consumer.paused_set.clear()  # as for a partition newly assigned during the next poll
    worker.step()  # its record arrives while recovering: sought back, not dropped
    assert (P1, 9) in consumer.seeks and worker._unrecovered is None


def test_partitions_pause_while_too_much_is_in_flight_and_resume_after():
    translator = FakeTranslator(immediate=False)
    polls = [records("in", 0, 0, [b"a", b"b"]), records("in", 1, 0, [b"c", b"d"])]
    worker, consumer, delivery, _ = make_worker(polls, translator)
    worker.step()
    assert consumer.paused_set == set()  # 2 in flight, limit 4
    worker.step()
    assert consumer.paused_set == {P0, P1}  # 4 in flight: pause, but keep polling
    translator.release()
    worker.step()
    assert consumer.paused_set == set()
    assert delivery.values("out") == [b"A", b"B", b"C", b"D"]


def test_a_paused_loop_waits_for_the_head_batch_instead_of_polling_every_few_ms(monkeypatch):
    monkeypatch.setattr(poll_loop_module, "PAUSED_WAIT_S", 5.0)
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a", b"b", b"c", b"d"])], translator)
    worker.step()
    assert consumer.paused_set == {P0, P1}  # 4 in flight, limit 4
    threading.Timer(0.2, translator.release).start()
    started = time.monotonic()
    worker.step()
    assert 0.15 < time.monotonic() - started < 4  # woken by the answers, not by the time limit
    assert consumer.poll_timeouts[-1] == 0  # the poll that keeps it in the group does not wait
    assert delivery.values("out") == [b"A", b"B", b"C", b"D"] and consumer.paused_set == set()


def test_exactly_once_sends_offsets_with_the_outputs_and_never_commits_itself():
    delivery = FakeDelivery(commits_offsets=True)
    worker, consumer, _, _ = make_worker([records("in", 0, 0, [b"a"])], delivery=delivery)
    worker.step()
    [(out, offsets, group)] = delivery.delivered
    assert [o.value for o in out] == [b"A"] and offsets == {P0: 1} and group == "group-metadata"
    assert consumer.commits in ([], [{P0: 0}])  # at most the starting position, through the seam
    assert worker._ledger.uncommitted() == {}


def test_commit_failure_is_retried_later():
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a"])])
    consumer.fail_commit = True
    worker.step()
    assert worker.stats.commit_failures == 1 and consumer.commits == []
    consumer.fail_commit = False
    worker.step()
    assert consumer.commits == [{P0: 1}]


def test_revoke_drains_finished_work_and_rewinds_the_rest():
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a"])], translator, assignor="range",
                                                commit_interval_ms=3_600_000)  # no commits in step()
    worker.step()
    translator.release()  # finished, but not yet delivered
    worker._consumer.polls.append(records("in", 1, 0, [b"b"]))
    worker.step()  # delivers "a", submits "b" (never answered)
    offsets = worker.before_revoke({P0, P1})
    assert delivery.values("out") == [b"A"]
    assert (P1, 0) in consumer.seeks  # "b" was dropped: the next owner gets it
    assert offsets == {P0: 1, P1: 0}


def test_an_eager_revoke_of_some_partitions_drains_only_their_work():
    # range revokes everything in a real group; with a subset (as close() may pass) only the
    # batches touching it are finished, and the others' work goes on.
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 1, 0, [b"moves"])], translator,
                                                commit_interval_ms=3_600_000, assignor="range")
    worker.step()
    translator.release()                      # P1's batch is finished, not yet delivered
    consumer.polls.append(records("in", 0, 0, [b"kept"]))
    worker.step()                             # delivers P1's answer; P0's call is still running
    offsets = worker.before_revoke({P1})
    assert offsets == {P1: 1} and delivery.values("out") == [b"MOVES"]
    assert consumer.seeks == [] and consumer.paused_set == set()
    assert worker._ledger.in_flight() == 1    # P0's record is still on its way
    translator.release()
    worker.step()
    assert delivery.values("out") == [b"MOVES", b"KEPT"]


def test_a_cooperative_revoke_drops_the_moving_records_without_waiting():
    # One call decodes records of both partitions; P1 moves. Nothing is waited for: P1's
    # record leaves the batch uncommitted (its next owner answers it), P0's answer comes
    # when the call finishes, and only P0 is committed after it.
    translator = FakeTranslator(immediate=False)
    polled = records("in", 1, 7, [b"moves"]) + records("in", 0, 0, [b"kept"])  # the kept answer is item 2 of 2
    worker, consumer, delivery, _ = make_worker([polled], translator, commit_interval_ms=1,
                                                assignor="cooperative-sticky")
    worker.step()
    assert len(translator.calls) == 1 and len(translator.calls[0][1]) == 2
    offsets = worker.before_revoke({P1})
    assert offsets == {} and consumer.commits == [{P1: 7, P0: 0}]  # P1's next owner starts at 7
    assert consumer.seeks == [] and consumer.paused_set == set() and delivery.delivered == []
    consumer.assigned = {P0}
    translator.release()
    worker.step()
    assert delivery.values("out") == [b"KEPT"]
    assert consumer.commits[-1] == {P0: 1} and [c[P1] for c in consumer.commits if P1 in c] == [7]


def test_a_cooperative_revoke_hands_over_what_is_already_translated():
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 1, 3, [b"done"])], translator,
                                                commit_interval_ms=3_600_000, assignor="cooperative-sticky")
    worker.step()
    translator.release()                      # translated, not yet delivered
    offsets = worker.before_revoke({P1})
    assert delivery.values("out") == [b"DONE"] and offsets == {P1: 4}


def test_a_cooperative_revoke_drops_gathered_records_and_empty_batches():
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker([records("in", 1, 0, [b"a", b"b"])], translator,
                                                assignor="cooperative-sticky")
    worker.step()
    worker._gathering = records("in", 1, 2, [b"c"]) + records("in", 0, 0, [b"d"])
    worker.before_revoke({P1})
    assert worker._ledger.in_flight() == 0 and [r.value for r in worker._gathering] == [b"d"]


def test_listener_commits_what_the_drain_made_safe():
    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a"])], commit_interval_ms=3_600_000)
    worker.step()
    committed = []

    async def commit_async(offsets):
        committed.append({tp: meta.offset for tp, meta in offsets.items()})

    consumer.commit_async = commit_async
    asyncio.run(DrainOnRevoke(worker).on_partitions_revoked({P0}))
    assert committed == [{P0: 1}]
    assert worker.stats.revocations == 1


def test_run_polls_until_stopped_then_drains_commits_and_closes():
    stop = threading.Event()

    class StopAfterFirst(FakeDelivery):
        def deliver(self, out_records, offsets, consumer):
            stop.set()
            return super().deliver(out_records, offsets, consumer)

    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a"])], delivery=StopAfterFirst(),
                                                commit_interval_ms=3_600_000)
    worker.run(stop)
    assert consumer.topics == ["in"] and isinstance(consumer.listener, DrainOnRevoke)
    assert consumer.commits[-1] == {P0: 1}
    assert consumer.closed and delivery.closed


def test_a_trickle_is_gathered_into_one_list_until_full():
    polls = [records("in", 0, 0, [b"a", b"b"]), records("in", 0, 2, [b"c"]), records("in", 1, 0, [b"d"])]
    worker, consumer, delivery, translator = make_worker(polls, batch_linger_ms=3_600_000)
    worker.step()
    worker.step()
    assert translator.calls == []  # 3 of max_poll_records=4, and the linger has not passed
    worker.step()
    assert [[item.text for item in items] for _, items in translator.calls] == [["a", "b", "c", "d"]]
    assert delivery.values("out") == [b"A", b"B", b"C", b"D"]


def test_gathered_records_are_sought_back_on_a_rewind():
    translator = FakeTranslator(immediate=False)
    polls = [records("in", 0, 0, [b"a", b"b", b"c", b"d"]), records("in", 0, 4, [b"e"]) + records("in", 1, 7, [b"f"])]
    worker, consumer, delivery, _ = make_worker(polls, translator, batch_linger_ms=3_600_000)
    worker.step()  # a full list: sent to the translator
    translator.release(RuntimeError("replica died"))
    worker.step()  # "e", "f" only gathered; the call failed: everything seeks back
    assert sorted(consumer.seeks) == [(P0, 0), (P1, 7)]
    assert worker._gathering == [] and not worker._ledger.has_pending()


def test_lag_counts_records_behind_the_highwater_including_those_in_flight():
    polls = [records("in", 0, 10, [b"a", b"b"]), [], []]
    translator = FakeTranslator(immediate=False)
    worker, consumer, delivery, _ = make_worker(polls, translator=translator, batch_linger_ms=1)
    consumer.highwaters = {P0: 20, P1: 7}  # P1: fetched, nothing polled yet -> 0 until records arrive
    consumer.topic_partitions = {"in": 3}
    worker.step()
    assert worker.lag == 10 and worker.partitions == 3  # offsets 10..19 unacknowledged; 3 partitions
    assert worker._observer.lags[-1] == {P0: 10, P1: 0}
    translator.release()
    worker.step()
    assert worker.lag == 8  # 10 and 11 answered and acknowledged
    assert worker._observer.polled_counts == [2] and worker._observer.delivered_counts == [(2, 2)]


class PoisonedConsumer(FakeConsumer):
    """Like kafka-python 3.0.12 when partition 1 holds a record it cannot parse (a header key
    that is not UTF-8): poll() raises once, and the fetcher keeps P1's failed records as its
    current ones (fetching P1 no more) until a seek moves past the record."""

    def __init__(self, polls, assigned, bad_offset):
        super().__init__(polls, assigned)
        self.bad_offset, self.raised = bad_offset, False
        self._fetcher = type("Fetcher", (), {"_next_partition_records": None})()

    def poll(self, timeout_ms=0, max_records=None):
        from kafka.errors import CorruptRecordError

        if not self.raised:
            self.raised = True
            self._fetcher._next_partition_records = type("Records", (), {"topic_partition": P1})()
            raise CorruptRecordError("Found invalid record structure: UnicodeDecodeError(...)")
        return super().poll(timeout_ms, max_records)

    def position(self, tp):
        return self.bad_offset


def test_a_record_the_consumer_cannot_parse_is_dead_lettered_and_skipped():
    worker, _, delivery, _ = make_worker([])
    consumer = PoisonedConsumer([records("in", 0, 0, [b"a"]), records("in", 1, 8, [b"b"])], {P0, P1}, bad_offset=7)
    worker._consumer = consumer
    worker.step()  # poll raises: P1's offset 7 is dead-lettered and skipped
    assert consumer.seeks == [(P1, 8)]
    worker.step()
    worker.step()
    assert delivery.values("out") == [b"A", b"B"]
    (dead,) = delivery.records("dlq")
    headers = dict(dead.headers)
    assert headers["s2s-error-reason"] == b"unreadable" and headers["s2s-source-offset"] == b"7"
    assert "s2s-original-size" not in headers  # never read, so no sizes to report
    committed = {}
    for commit in consumer.commits:
        committed.update(commit)
    assert committed == {P0: 1, P1: 9}


class DeferringDelivery(FakeDelivery):
    def deliver(self, out_records, offsets, consumer):
        from s2s.stream.delivery import DeliveryDeferred

        raise DeliveryDeferred("group generation -1: offsets wait")


class CountingStop(threading.Event):
    def __init__(self):
        super().__init__()
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return False


@pytest.mark.parametrize("rejoining", [False, True])
def test_a_deferred_delivery_sleeps_only_outside_a_cooperative_rejoin(rejoining):
    # kafka-python 3.0.12 drops a join that completes while no poll() waits (rebalancing.py):
    # rejoining, the loop must be back in poll() at once, whose REJOIN_POLL_MS is the pause.
    from kafka.coordinator.assignors.abstract import RebalanceProtocol

    worker, consumer, delivery, _ = make_worker([records("in", 0, 0, [b"a"])], delivery=DeferringDelivery(),
                                                assignor="cooperative-sticky")
    consumer._coordinator = type("C", (), {"_rebalance_protocol": RebalanceProtocol.COOPERATIVE,
                                           "rejoining": rejoining})()
    consumer._fetcher = type("F", (), {"fetch_records": lambda self, *a, **k: ({}, True)})()
    worker._stop = CountingStop()
    worker.step()
    assert worker.stats.deferrals == 1 and worker._ledger.in_flight() == 1
    assert worker._stop.waits == (0 if rejoining else 1)
