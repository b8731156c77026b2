"""Faults mid-stream: replicas killed by Ray, the broker restarted. Afterwards every input key
has its answer (duplicates are allowed in at-least-once mode only).

    .venv/bin/pytest tests/integration/stream/test_stream_faults.py -v
"""
from __future__ import annotations

import pytest

from s2s.prediction import Translator
from s2s.stream import headers as hdr

from .streams import (TopicReader, by_key, header, keys_of, kill_busy_replica, kill_replica, produce,
                      produce_in_background, read_answers, restart_broker, toy_texts, wait_for)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

COUNT = 1000


@pytest.fixture(scope="module")
def keyed(toy_model):
    """(key, text, expected answer) for COUNT inputs."""
    texts = toy_texts(COUNT, seed=11)
    answers = Translator.from_checkpoint(toy_model, device="cpu").best(texts)
    return [(f"key-{i}".encode(), t.encode(), a.encode()) for i, (t, a) in enumerate(zip(texts, answers))]


def assert_all_answered(records, keyed, duplicates_allowed: bool) -> None:
    expected = {key: answer for key, _, answer in keyed}
    grouped = by_key(records)
    missing = set(expected) - set(grouped)
    assert not missing, f"{len(missing)} keys lost, e.g. {sorted(missing)[:3]}"
    for key, answers in grouped.items():
        assert {a.value for a in answers} == {expected[key]}, key
        assert duplicates_allowed or len(answers) == 1, f"{key!r} answered {len(answers)} times"


def rewinds(app) -> int:
    return sum(s["rewinds"] for s in app.stats() if isinstance(s, dict))


def test_killing_an_ingress_and_a_translator_replica_loses_nothing(stream_app, toy_model, keyed):
    app = stream_app(toy_model, ingress_replicas=2, translator_replicas=2,
                     loader="tests.integration.stream.loaders:load_slow_toy")
    producer = produce_in_background(app.bootstrap, app.topics["in"], [(k, t) for k, t, _ in keyed], pace_per_s=150)
    reader = TopicReader(app.bootstrap, app.topics["out"])
    answered = len(reader.read_until(lambda records: len(records) >= 150, timeout_s=120))
    assert 150 <= answered < COUNT  # mid-stream

    # Calls in flight on the killed translator fail; the ingress replicas retry them from Kafka.
    running = kill_busy_replica(app, "translator-toy")
    assert running >= 1, "no translator replica was decoding: the test kills nothing that matters"
    assert wait_for(lambda: rewinds(app) >= 1, timeout_s=150), f"no rewind; ingress counters: {app.stats()}"
    # The killed ingress commits nothing more; its partitions move to the other replica.
    kill_replica(app, "ingress")

    producer.join(timeout=120)
    assert not producer.is_alive() and not producer.errors, producer.errors
    records = reader.read_until(lambda rs: keys_of(rs) >= {k for k, _, _ in keyed}, timeout_s=240)
    reader.close()
    assert_all_answered(records, keyed, duplicates_allowed=True)
    print(f"answers read: {len(records)} for {COUNT} keys; live ingress replicas: {app.stats()}")


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_broker_restart_mid_stream_loses_nothing(stream_app, toy_model, keyed, kafka_broker, delivery):
    if kafka_broker.script_env is None:
        pytest.skip("the broker comes from S2S_KAFKA_BOOTSTRAP; the tests cannot restart it")
    app = stream_app(toy_model, delivery=delivery)
    first, second = keyed[:COUNT // 2], keyed[COUNT // 2:]
    producer = produce_in_background(app.bootstrap, app.topics["in"], [(k, t) for k, t, _ in first], pace_per_s=100)
    read_committed = delivery == "exactly_once"
    reader = TopicReader(app.bootstrap, app.topics["out"], read_committed=read_committed)
    answered = len(reader.read_until(lambda records: len(records) >= 50, timeout_s=120))
    reader.close()
    assert 50 <= answered < len(first), f"mid-stream? answered {answered}; ingress: {app.stats()!r}"

    restart_broker(kafka_broker)
    producer.join(timeout=180)
    assert not producer.is_alive() and not producer.errors, producer.errors
    produce(app.bootstrap, app.topics["in"], [(k, t) for k, t, _ in second])

    records = read_answers(app.bootstrap, app.topics["out"], {k for k, _, _ in keyed}, timeout_s=240,
                           read_committed=read_committed)
    assert_all_answered(records, keyed, duplicates_allowed=not read_committed)
    print(f"answers read: {len(records)} for {COUNT} keys; ingress replicas: {app.stats()}")


def around_poison(app, count: int, seed: int, poison_key: bytes, timeout_s: float = 240) -> list:
    """Produce ``count`` good texts with one poison ("boom") in the middle; check every good one
    is answered; return the dead-letter topic read to its end."""
    good = [(f"good-{i}".encode(), text.encode()) for i, text in enumerate(toy_texts(count, seed=seed))]
    produce(app.bootstrap, app.topics["in"], good[:count // 2] + [(poison_key, b"1 boom 2")] + good[count // 2:])
    answers = read_answers(app.bootstrap, app.topics["out"], {k for k, _ in good}, timeout_s=timeout_s)
    assert {r.key for r in answers} == {k for k, _ in good}, repr(app.stats())
    reader = TopicReader(app.bootstrap, app.topics["dlq"])
    reader.read_until(lambda records: any(r.key == poison_key for r in records), timeout_s=120)
    dead = reader.read_to_end(timeout_s=30)
    reader.close()
    return dead


def test_a_text_that_kills_the_translator_process_is_dead_lettered_and_the_rest_answered(stream_app, toy_model):
    """Without a crash budget its partition would be redelivered to a dying replica forever."""
    app = stream_app(toy_model, loader="tests.integration.stream.loaders:load_dying_toy",
                     ingress={"max_decode_crashes": 3})
    dead = around_poison(app, 60, seed=5, poison_key=b"killer", timeout_s=180)
    assert [r.key for r in dead] == [b"killer"] and dead[0].value == b"1 boom 2"
    assert header(dead[0], hdr.ERROR_REASON) == "model_crash"


def test_with_three_ingress_replicas_only_the_killer_is_dead_lettered(stream_app, toy_model):
    """The translator merges the calls of every ingress replica: a crash fails all of them. The
    suspects are then decoded alone in the route's quarantine (one call at a time), so the good
    records of the other replicas are cleared and only the killer uses up its crash budget."""
    app = stream_app(toy_model, loader="tests.integration.stream.loaders:load_dying_toy", ingress_replicas=3,
                     ingress={"max_decode_crashes": 3})
    dead = around_poison(app, 90, seed=7, poison_key=b"killer")
    assert [r.key for r in dead] == [b"killer"] and header(dead[0], hdr.ERROR_REASON) == "model_crash"


def test_a_text_whose_decode_hangs_is_dead_lettered_as_decode_timeout(stream_app, toy_model):
    """Without the health check the translator would stay wedged and the ingress would retry the
    call forever. Past max_decode_s the replica fails its checks and Serve replaces it; the call
    that held the text fails as a kill, and after max_decode_crashes such kills (the quarantine's,
    one record each) the text is dead-lettered while the rest is answered."""
    app = stream_app(toy_model, loader="tests.integration.stream.loaders:load_hanging_toy",
                     route={"max_decode_s": 3}, ingress={"call_timeout_s": 45, "max_decode_crashes": 2})
    dead = around_poison(app, 30, seed=9, poison_key=b"hang")
    assert [r.key for r in dead] == [b"hang"] and header(dead[0], hdr.ERROR_REASON) == "decode_timeout"
