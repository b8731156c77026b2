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

from s2s.stream.kafka_admin import BOOTSTRAP_ENV, create_topics, delete_topics, wait_for_broker

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
    last_error = ""
    for _attempt in range(3):  # another process may grab a free port before the broker binds it
        port, controller_port, sasl_port = free_ports(3)
        env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port),
                   KAFKA_SASL_PORT=str(sasl_port), KAFKA_HOME_DIR=str(REPO_DIR / ".kafka" / f"{name}-{port}"),
                   **(extra_env or {}))
        broker = KafkaBroker(f"127.0.0.1:{port}", env)
        result = broker.kafka_sh("start", timeout=KAFKA_START_TIMEOUT_S)
        if result.returncode == 0:
            return broker
        last_error = result.stderr
        stop_test_broker(broker)
    raise RuntimeError(f"could not start a test Kafka broker:\n{last_error}")


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
    import dataclasses

    from s2s.config import load_config

    cfg = load_config(TOY_CONFIG)
    data = dataclasses.replace(cfg.data, train=str(data_dir / "train.parquet"),
                               dev=str(data_dir / "dev.parquet"), test=str(data_dir / "test.parquet"))
    training = dataclasses.replace(cfg.training, **training_overrides)
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
