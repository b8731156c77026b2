"""Chaos on the 3-broker cluster: the same keyed load with 1% poison while brokers die. Topics
have 3 copies with min.insync.replicas 2 (the app's own create_topics defaults), so one broker
may be SIGKILLed at a time: first the leader of the busiest input partition, and in
exactly-once mode then the broker that coordinates the ingress's transactions. Nothing may be
lost, every poison record is dead-lettered, and exactly-once mode duplicates nothing. The rows
join the chaos report (bench/results/chaos.json).

    .venv/bin/pytest tests/chaos/test_chaos_cluster.py -v
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from s2s.stream.kafka_admin import create_topics, delete_topics, end_offsets
from tests.integration.stream.streams import StreamApp, wait_for

from .driver import Fault, chaos_run
from .test_chaos import LIMITS, LOADER, PACE_PER_S, assert_nothing_lost, translate  # noqa: F401 - a fixture
from .workload import build_workload

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]

# At PACE_PER_S, 25 s of load; 60 s in exactly-once mode, whose second kill waits until the first
# broker is back: a SIGKILLed broker starts again in 7 s on an idle machine, 35 s on a busy one.
COUNT = 1500
COUNT_EXACTLY_ONCE = 3600
# Then its restart begins. Its partitions are led elsewhere once the controller fences it: when its
# session (9 s) ends, or when it registers again, whichever comes first.
DOWN_S = 3
NOTE = "3 brokers, RF 3, min.insync.replicas 2"
# A SIGKILLed leader's partitions have no leader until its broker session ends (~9 s): an ingress
# flush must outlast that, and the worst-case drain (4 + 15 + 5 s) fits in the session timeout.
KAFKA_OPTIONS = {"flush_timeout_s": 15, "session_timeout_ms": 30_000}


@pytest.fixture
def cluster_app(ray_serve, kafka_cluster3) -> Iterator[Callable[..., StreamApp]]:
    """``deploy(model, **options) -> StreamApp`` on fresh 3-partition topics of the cluster; after
    the test the app and topics are deleted and every broker is running again."""
    from ray import serve

    deployed: list[StreamApp] = []

    def deploy(model, **options) -> StreamApp:
        topics = {role: f"chaos3-{role}-{uuid.uuid4().hex[:8]}" for role in ("in", "out", "dlq")}
        create_topics(kafka_cluster3.bootstrap, topics.values(), partitions=3)  # RF 3, min ISR 2
        # Another broker's metadata may not list a new topic's partitions for a moment.
        assert wait_for(lambda: kafka_cluster3.in_sync_replicas(topics["in"], 0) == [1, 2, 3], timeout_s=30)
        app = StreamApp.start(f"s2s-{uuid.uuid4().hex[:8]}", kafka_cluster3.bootstrap, topics, str(model),
                              **options)
        deployed.append(app)
        return app

    yield deploy
    for app in deployed:
        serve.delete(app.name)
    result = kafka_cluster3.kafka_sh("cluster-start", timeout=300)  # starts whichever broker is down
    assert result.returncode == 0, result.stderr
    for app in deployed:
        delete_topics(kafka_cluster3.bootstrap, app.topics.values())


class BrokerFaults:
    """Kills one broker at a time (SIGKILL) and starts it again."""

    def __init__(self, cluster, app: StreamApp):
        self.cluster, self.app = cluster, app
        self.killed: int | None = None
        self.killed_at = 0.0

    def kill_busiest_leader(self) -> str:
        ends = end_offsets(self.app.bootstrap, self.app.topics["in"])
        partition = max(ends, key=ends.get)
        leader = self.cluster.leader_of(self.app.topics["in"], partition)
        self._kill(leader)
        return f"broker {leader}, leader of input partition {partition} ({ends[partition]} records)"

    def kill_transaction_coordinator(self) -> str:
        ids = self._transactional_ids()
        coordinators = Counter(self.cluster.transaction_coordinator(txn_id) for txn_id in ids)
        broker, coordinated = coordinators.most_common(1)[0]
        self._kill(broker)
        return f"broker {broker}, coordinator of {coordinated} of {len(ids)} transactional ids"

    def restart(self) -> str:
        """Start the killed broker again, once it has been down DOWN_S."""
        assert self.killed is not None
        time.sleep(max(0.0, self.killed_at + DOWN_S - time.monotonic()))  # the fault's length, not a sync
        self.cluster.start(self.killed)
        broker, self.killed = self.killed, None
        return f"broker {broker} down {time.monotonic() - self.killed_at:.0f}s"

    def _kill(self, broker: int) -> None:
        assert self.killed is None, "one broker at a time: min.insync.replicas is 2 of 3"
        self.cluster.kill(broker)
        self.killed, self.killed_at = broker, time.monotonic()

    def _transactional_ids(self) -> list[str]:
        """The ingress's transactional ids as the coordinators list them (they start with the
        group id), so the test follows whatever ids the ingress uses."""
        from kafka import KafkaAdminClient

        with KafkaAdminClient(bootstrap_servers=self.app.bootstrap) as admin:
            listed = admin.list_transactions()
        ids = sorted({txn.transactional_id for listings in listed.values() for txn in listings
                      if txn.transactional_id.startswith(self.app.group_id)})
        assert ids, f"no transactional id starting with {self.app.group_id!r} on the cluster"
        return ids


def test_at_least_once_survives_sigkill_of_the_busiest_partitions_leader(cluster_app, kafka_cluster3, toy_model,
                                                                          translate):
    app = cluster_app(toy_model.model_dir, delivery="at_least_once", ingress_replicas=2, translator_replicas=2,
                      loader=LOADER, limits=LIMITS, **KAFKA_OPTIONS)
    faults = BrokerFaults(kafka_cluster3, app)
    schedule = [Fault(6, "SIGKILL busiest leader", faults.kill_busiest_leader),
                Fault(7, f"restart it {DOWN_S} s later", faults.restart)]
    run = chaos_run("at_least_once", app, build_workload(COUNT, translate, seed=3), schedule, PACE_PER_S,
                    notes=[NOTE])
    assert_nothing_lost(app, run, exactly_once=False)


def test_exactly_once_survives_sigkill_of_the_leader_and_of_the_transaction_coordinator(cluster_app, kafka_cluster3,
                                                                                         toy_model, translate):
    app = cluster_app(toy_model.model_dir, delivery="exactly_once", ingress_replicas=2, translator_replicas=2,
                      loader=LOADER, limits=LIMITS, transaction_timeout_ms=10_000,
                      **KAFKA_OPTIONS)
    faults = BrokerFaults(kafka_cluster3, app)
    schedule = [Fault(4, "SIGKILL busiest leader", faults.kill_busiest_leader),
                Fault(5, f"restart it {DOWN_S} s later", faults.restart),
                Fault(20, "SIGKILL transaction coordinator", faults.kill_transaction_coordinator),
                Fault(21, f"restart it {DOWN_S} s later", faults.restart)]
    run = chaos_run("exactly_once", app, build_workload(COUNT_EXACTLY_ONCE, translate, seed=4), schedule, PACE_PER_S,
                    notes=[NOTE])
    assert_nothing_lost(app, run, exactly_once=True)
