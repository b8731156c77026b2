"""Runs one chaos scenario: produce the workload at a steady pace while faults fire on a time
schedule, then read the output and dead-letter topics until every input is accounted for."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2s.stream.kafka_admin import end_offsets
from tests.integration.stream.streams import (StreamApp, TopicReader, keys_of, produce_in_background, wait_for,
                                              wait_for_commits)

from .report import RUNS, ChaosRun
from .workload import Workload, answered_ids, judge

RECOVERY_S = 240  # after the load: every answer, dead letter and commit in (a slow shared machine)


@dataclass(frozen=True)
class Fault:
    at_s: float                 # seconds after the first message is produced
    name: str
    apply: Callable[[], str | None]  # may return what it found, for the report


def scale_ingress(app: StreamApp, model: str, options: dict, replicas: int) -> str:
    """serve.run the same application with ``replicas`` ingress replicas; returns once Serve
    reports that many (the removed ones drained, committed and left the group)."""
    before = _live_ingress_ids(app)
    StreamApp.start(app.name, app.bootstrap, app.topics, model, **{**options, "ingress_replicas": replicas})
    # Replicas still stopping may answer a moment longer.
    assert wait_for(lambda: len(_live_ingress_ids(app)) == replicas, timeout_s=60), _live_ingress_ids(app)
    return f"{len(_live_ingress_ids(app) & before)} of {replicas} kept"


def _live_ingress_ids(app: StreamApp) -> set[str]:
    return {stats["replica"] for stats in app.stats() if isinstance(stats, dict)}


def run_schedule(faults: Sequence[Fault], started: float) -> list[str]:
    """Apply each fault at its time (or as soon as the previous one is done); names them with
    the second each really began and what they found."""
    applied = []
    for fault in sorted(faults, key=lambda f: f.at_s):
        time.sleep(max(0.0, started + fault.at_s - time.monotonic()))  # the schedule itself, not a sync
        began = time.monotonic() - started
        found = fault.apply()
        applied.append(f"{fault.name} @{began:.0f}s" + (f" ({found})" if found else ""))
    return applied


def chaos_run(mode: str, app: StreamApp, workload: Workload, faults: Sequence[Fault], pace_per_s: float,
              notes: Sequence[str] = ()) -> ChaosRun:
    """Drive the load and the faults; the run, judged, is added to the session's report."""
    read_committed = mode == "exactly_once"
    out = TopicReader(app.bootstrap, app.topics["out"], read_committed)
    dead = TopicReader(app.bootstrap, app.topics["dlq"], read_committed)
    try:
        started = time.monotonic()
        producer = produce_in_background(app.bootstrap, app.topics["in"], workload.items, pace_per_s)
        applied = run_schedule(faults, started)
        producer.join(timeout=RECOVERY_S)
        assert not producer.is_alive() and not producer.errors, producer.errors
        deadline = time.monotonic() + RECOVERY_S
        out.read_until(lambda records: answered_ids(records) >= set(workload.expected), deadline - time.monotonic())
        dead.read_until(lambda records: keys_of(records) >= set(workload.poison), deadline - time.monotonic())
        # Once every input offset is committed nothing more is written: read both topics to their end.
        committed = wait_for_commits(app.bootstrap, app, timeout_s=max(1.0, deadline - time.monotonic()))
        ends = end_offsets(app.bootstrap, app.topics["in"])
        uncommitted = sum(end - (committed.get(p) or 0) for p, end in ends.items())
        seconds = time.monotonic() - started
        ingress = [stats for stats in app.stats() if isinstance(stats, dict)]
        answers, dead_letters = out.read_to_end(timeout_s=60), dead.read_to_end(timeout_s=60)
    finally:
        out.close()
        dead.close()
    run = ChaosRun(mode, len(workload.items), len(workload.poison), [*applied, *notes],
                   judge(workload, answers, dead_letters), seconds, uncommitted, ingress)
    RUNS.append(run)
    return run


def find_lost(app: StreamApp, lost_ids: Sequence[str]) -> str:
    """Where lost answers went, for the failure message: in the topic for a fresh read_committed
    reader (the run's own reader missed them), or only for a read_uncommitted one (they are in
    aborted or open transactions), or nowhere."""
    seen = {}
    for read_committed in (True, False):
        reader = TopicReader(app.bootstrap, app.topics["out"], read_committed)
        try:
            seen[read_committed] = sorted(answered_ids(reader.read_to_end(timeout_s=60)) & set(lost_ids))
        finally:
            reader.close()
    return f"of the lost {sorted(lost_ids)}, a fresh reader finds {seen[True]} committed, {seen[False]} at all"
