"""Shared pytest fixtures. Each section belongs to one part of the project; add yours as a new section."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from s2s.localhost import free_ports

from s2s.stream.kafka_admin import BOOTSTRAP_ENV, create_topics, delete_topics
from tests.support.kafka import wait_for_broker
from tests.support.reports import PHASE_REPORTS

REPO_DIR = Path(__file__).resolve().parents[1]


# =============================================================================================
# Kafka: a real Apache Kafka 4.x broker (cluster/kafka/kafka.sh), or S2S_KAFKA_BOOTSTRAP's cluster
# =============================================================================================

KAFKA_SH = REPO_DIR / "cluster" / "kafka" / "kafka.sh"
KAFKA_START_TIMEOUT_S = 900  # a cold first run downloads the broker jars (~55 MB) through Maven


@dataclass(frozen=True)
class KafkaBroker:
    """The cluster the tests talk to.

    ``script_env`` is the environment under which ``kafka.sh`` manages this broker (home dir,
    ports); None when the cluster came from S2S_KAFKA_BOOTSTRAP and the tests do not own it.
    """

    bootstrap: str
    script_env: dict[str, str] | None

    def kafka_sh(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        """Run ``bash cluster/kafka/kafka.sh ARGS`` against this broker (text mode, output captured)."""
        assert self.script_env is not None, "kafka.sh does not manage an external cluster"
        return subprocess.run(["bash", str(KAFKA_SH), *args], env=self.script_env, timeout=timeout,
                              capture_output=True, text=True, **kwargs)


def start_test_broker(name: str = "test", extra_env: dict[str, str] | None = None) -> KafkaBroker:
    """Start a broker of the caller only, on fresh ports (KAFKA_SASL_PORT too, used when
    ``extra_env`` sets KAFKA_SASL_USERS), under .kafka/<name>-<port>/."""

    def start() -> tuple[KafkaBroker, subprocess.CompletedProcess]:
        port, controller_port, sasl_port = free_ports(3)
        env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port),
                   KAFKA_SASL_PORT=str(sasl_port), KAFKA_HOME_DIR=str(REPO_DIR / ".kafka" / f"{name}-{port}"),
                   **(extra_env or {}))
        broker = KafkaBroker(f"127.0.0.1:{port}", env)
        return broker, broker.kafka_sh("start", timeout=KAFKA_START_TIMEOUT_S)

    return _start_on_free_ports(start, stop_test_broker, "broker")


def _start_on_free_ports(start: Callable[[], tuple], stop: Callable, what: str):
    """``start()`` -> (node, its kafka.sh result), tried three times: another process may grab a
    free port before the broker binds it."""
    last_error = ""
    for _attempt in range(3):
        node, result = start()
        if result.returncode == 0:
            return node
        last_error = result.stderr
        stop(node)
    raise RuntimeError(f"could not start a test Kafka {what}:\n{last_error}")


def stop_test_broker(broker: KafkaBroker) -> None:
    broker.kafka_sh("stop", timeout=90)
    shutil.rmtree(broker.script_env["KAFKA_HOME_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """The session's Kafka cluster: S2S_KAFKA_BOOTSTRAP's if set, else a broker started here.

    A broker started here listens on ports chosen at run time (never the demo's 19092), keeps
    its data in .kafka/test-<port>/, and is stopped and deleted at the end of the session.
    """
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        wait_for_broker(external, timeout=60)
        yield KafkaBroker(external, None)
        return
    broker = start_test_broker()
    try:
        yield broker
    finally:
        stop_test_broker(broker)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """Bootstrap servers ("127.0.0.1:PORT") of the session's Kafka cluster."""
    return kafka_broker.bootstrap


@pytest.fixture
def topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, suffix="") -> name``: creates a topic unique to this test.

    Names look like ``<test name>-<suffix>-<8 hex>``; every topic made is deleted after the test.
    """
    made: list[str] = []
    base = re.sub(r"[^a-zA-Z0-9._-]+", "_", request.node.name)[:150]

    def make(partitions: int = 1, suffix: str = "") -> str:
        name = "-".join(part for part in (base, suffix, uuid.uuid4().hex[:8]) if part)
        create_topics(kafka_bootstrap, [name], partitions=partitions)
        made.append(name)
        return name

    yield make
    delete_topics(kafka_bootstrap, made)


@pytest.fixture
def unique_topic(topic_factory: Callable[..., str]) -> str:
    """One fresh single-partition topic, deleted after the test."""
    return topic_factory()


# =============================================================================================
# Core: a toy reverse-task data set and a model trained on it (once per test session)
# =============================================================================================

TOY_CONFIG = REPO_DIR / "configs" / "toy-reverse.yaml"


@dataclass(frozen=True)
class ToyModel:
    data_dir: Path          # train/dev/test.parquet
    model_dir: Path         # the best checkpoint
    run_dir: Path
    train_seconds: float    # wall time of the whole Trainer run


def toy_config(data_dir: Path, **training_overrides):
    """configs/toy-reverse.yaml pointed at `data_dir`, with training overrides."""
    from s2s.config import load_config

    cfg = load_config(TOY_CONFIG)
    data = cfg.data.replace(train=str(data_dir / "train.parquet"), dev=str(data_dir / "dev.parquet"),
                            test=str(data_dir / "test.parquet"))
    training = cfg.training.replace(**training_overrides)
    return cfg.replace(data=data, training=training)


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory) -> Path:
    from s2s.prepare.toy import prepare_toy

    data_dir = tmp_path_factory.mktemp("toy-data")
    prepare_toy(data_dir, "reverse")
    return data_dir


@pytest.fixture(scope="session")
def toy_model(toy_data_dir, tmp_path_factory) -> ToyModel:
    """The toy reverse model, trained exactly as `s2s train --config configs/toy-reverse.yaml`."""
    import time

    from s2s.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("toy-run")
    started = time.perf_counter()
    Trainer(toy_config(toy_data_dir), run_dir, show_progress=False).run()
    return ToyModel(toy_data_dir, run_dir / "best", run_dir, time.perf_counter() - started)


# =============================================================================================
# Kafka: a 3-broker KRaft cluster (kafka.sh cluster-start), for replication and broker faults
# =============================================================================================

CLUSTER_SIZE = 3


@dataclass(frozen=True)
class KafkaCluster(KafkaBroker):
    """Three combined broker+controller nodes of this session only; brokers are named 1..3.

    Topics created on it by ``create_topics`` get 3 replicas and min.insync.replicas 2, so one
    broker may be killed at a time without losing an acked record or stopping writes."""

    def kill(self, broker_id: int) -> None:
        """SIGKILL one broker (no controlled shutdown: its leaderships move after its session ends)."""
        self._broker("kill", broker_id)

    def stop(self, broker_id: int) -> None:
        """SIGTERM one broker (a controlled shutdown: its leaderships move first)."""
        self._broker("stop", broker_id)

    def start(self, broker_id: int) -> None:
        """Start one broker again; returns once the controller lists it as live."""
        self._broker("start", broker_id)

    def _broker(self, action: str, broker_id: int) -> None:
        result = self.kafka_sh(f"broker-{action}", str(broker_id), timeout=240)
        assert result.returncode == 0, result.stderr

    def leader_of(self, topic: str, partition: int) -> int:
        """The id of the broker leading ``topic``'s partition now (-1 while it has none)."""
        return self._partition(topic, partition)["leader_id"]

    def in_sync_replicas(self, topic: str, partition: int) -> list[int]:
        return sorted(self._partition(topic, partition).get("isr_nodes", []))

    def transaction_coordinator(self, transactional_id: str, timeout_s: float = 60) -> int:
        """The id of the broker coordinating ``transactional_id``'s transactions (FindCoordinator,
        key type TRANSACTION); retried while the coordinator moves or the state topic is created."""
        import time

        from kafka.errors import KafkaError
        from kafka.protocol.metadata import CoordinatorType

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self._admin() as admin:
                    # kafka-python has no public call for this one lookup; describe_transactions
                    # uses the same helper but fails for an id that has no transaction yet.
                    found = admin._manager.run(admin._find_coordinator_ids, [transactional_id],
                                               CoordinatorType.TRANSACTION)
                return found[transactional_id]
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # no event tells when a coordinator is elected

    def _partition(self, topic: str, partition: int) -> dict:
        with self._admin() as admin:
            (described,) = admin.describe_topics([topic])
        # {} while the broker answering has not heard of the new topic's partitions yet
        return next((p for p in described["partitions"] if p["partition_index"] == partition), {})

    def _admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="s2s-test-cluster",
                                request_timeout_ms=10_000)


def start_test_cluster(name: str = "cluster3") -> KafkaCluster:
    """Start a cluster of the caller only, on fresh ports, under .kafka/<name>-<port>/."""

    def start() -> tuple[KafkaCluster, subprocess.CompletedProcess]:
        ports = free_ports(2 * CLUSTER_SIZE)
        client_ports, controller_ports = ports[:CLUSTER_SIZE], ports[CLUSTER_SIZE:]
        home = REPO_DIR / ".kafka" / f"{name}-{client_ports[0]}"
        env = dict(os.environ, KAFKA_HOME_DIR=str(home), KAFKA_CLUSTER_DIR=str(home),
                   KAFKA_CLUSTER_PORTS=",".join(map(str, client_ports)),
                   KAFKA_CLUSTER_CONTROLLER_PORTS=",".join(map(str, controller_ports)),
                   KAFKA_START_TIMEOUT="180", KAFKA_STOP_TIMEOUT="20")
        cluster = KafkaCluster(",".join(f"127.0.0.1:{port}" for port in client_ports), env)
        return cluster, cluster.kafka_sh("cluster-start", str(CLUSTER_SIZE), timeout=KAFKA_START_TIMEOUT_S)

    return _start_on_free_ports(start, stop_test_cluster, "cluster")


def stop_test_cluster(cluster: KafkaCluster) -> None:
    cluster.kafka_sh("cluster-clean", timeout=120)
    shutil.rmtree(cluster.script_env["KAFKA_CLUSTER_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """A 3-broker cluster started here (never S2S_KAFKA_BOOTSTRAP's: the tests kill its brokers),
    on ports chosen at run time; stopped and deleted at the end of the session."""
    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        pytest.skip("S2S_KAFKA_BOOTSTRAP names an external cluster; the 3-broker tests kill brokers")
    cluster = start_test_cluster()
    try:
        yield cluster
    finally:
        stop_test_cluster(cluster)


# =============================================================================================
# Reports: each test's outcome per phase, for fixtures whose teardown explains a failure
# =============================================================================================

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
