"""Chaos: a keyed, sequenced load with 1% poison through Kafka -> Ray Serve -> Kafka while
replicas are killed, the ingress is scaled down, decodes stall past max.poll.interval.ms and
the broker restarts. Nothing may be lost, every poison record is dead-lettered with its reason,
each key's answers keep produce order, and exactly-once mode duplicates nothing. The report
(one row per run) is printed at the end of the session and written to bench/results/chaos.json.

    .venv/bin/pytest tests/chaos -v
"""
from __future__ import annotations

import pytest

from s2s.prediction import Translator
from tests.integration.stream.streams import kill_replica, restart_broker

from .driver import Fault, chaos_run, find_lost, scale_ingress
from .loaders import SLOW_DECODE_S
from .workload import build_workload

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]

COUNT = 1500
PACE_PER_S = 60  # the load lasts 25 s; every fault falls inside it
LOADER = "tests.chaos.loaders:load_chaos_toy"
LIMITS = {"max_bytes": 300}  # streams.BAD_INPUTS's too_large record is over it
# A stalled decode outlasts the poll interval: the consumer keeps polling and stays in the group.
MAX_POLL_INTERVAL_MS = 8_000
# The stall stays under the translator's decode limit, so it is waited out, not killed; the
# call timeout leaves room for the health checks to kill a decode past that limit (as the
# config requires). Calls that time out are covered by tests/unit/stream/test_worker.py.
MAX_DECODE_S = 12
CALL_TIMEOUT_S = 45


@pytest.fixture(scope="module")
def translate(toy_model):
    return Translator.from_checkpoint(toy_model.model_dir, device="cpu").best


def assert_nothing_lost(app, run, exactly_once: bool) -> None:
    verdict = run.verdict
    assert verdict.clean, f"{verdict}; {find_lost(app, verdict.lost_ids)}"
    assert run.uncommitted == 0, f"{run.uncommitted} input records never committed: the stream stalled"
    assert verdict.dead_letters == run.poison + verdict.dlq_duplicates
    if exactly_once:
        assert verdict.duplicates == 0 and verdict.dlq_duplicates == 0, verdict


def test_at_least_once_survives_replica_kills_scale_down_and_stalled_decodes(stream_app, toy_model, translate):
    assert SLOW_DECODE_S * 1000 > MAX_POLL_INTERVAL_MS and SLOW_DECODE_S < MAX_DECODE_S
    options = dict(delivery="at_least_once", ingress_replicas=3, translator_replicas=2, loader=LOADER,
                   limits=LIMITS, ingress={"call_timeout_s": CALL_TIMEOUT_S, "drain_timeout_s": 2.5},
                   route={"max_decode_s": MAX_DECODE_S},
                   # the worst-case drain, 2.5 s + 3 s + 2 s, fits in the 8 s poll interval
                   max_poll_interval_ms=MAX_POLL_INTERVAL_MS, flush_timeout_s=3, max_block_ms=2_000)
    app = stream_app(toy_model.model_dir, **options)
    workload = build_workload(COUNT, translate, slow_at=(0.2, 0.21, 0.55), seed=1)
    faults = [Fault(3, "kill translator", lambda: kill_replica(app, "translator-toy")),
              Fault(9, "kill ingress", lambda: kill_replica(app, "ingress")),
              Fault(15, "scale ingress 3->1", lambda: scale_ingress(app, str(toy_model.model_dir), options, 1))]
    stalls = f"3 decodes stalled {SLOW_DECODE_S:.0f} s (max.poll.interval {MAX_POLL_INTERVAL_MS / 1000:.0f} s)"
    run = chaos_run("at_least_once", app, workload, faults, PACE_PER_S, notes=[stalls])
    assert_nothing_lost(app, run, exactly_once=False)
    # The stalls happened: no stalled text was answered before its decode had outlasted the poll interval.
    assert run.verdict.stalled_ms >= MAX_POLL_INTERVAL_MS, run.verdict


def test_exactly_once_survives_replica_kills_and_a_broker_restart(stream_app, toy_model, translate, kafka_broker):
    if kafka_broker.script_env is None:
        pytest.skip("the broker comes from S2S_KAFKA_BOOTSTRAP; the tests cannot restart it")
    # A killed ingress leaves its transaction open; the broker aborts it after this long, and
    # until then read_committed readers wait at it.
    app = stream_app(toy_model.model_dir, delivery="exactly_once", ingress_replicas=2, translator_replicas=2,
                     loader=LOADER, limits=LIMITS, transaction_timeout_ms=6_000)
    workload = build_workload(COUNT, translate, seed=2)
    faults = [Fault(3, "kill translator", lambda: kill_replica(app, "translator-toy")),
              Fault(8, "kill ingress", lambda: kill_replica(app, "ingress")),
              Fault(14, "broker restart", lambda: restart_broker(kafka_broker))]
    run = chaos_run("exactly_once", app, workload, faults, PACE_PER_S)
    assert_nothing_lost(app, run, exactly_once=True)
