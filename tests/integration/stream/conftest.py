"""Fixtures for the streaming tests: a toy model trained once, a private Ray + Serve for this
package, and a factory that deploys the streaming application on fresh topics."""
from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.reports import failed_so_far
from tests.support.serve import private_serve, replica_stderr_tails

from .streams import StreamApp

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    """A toy reverse model trained here (~30 s on 2 cores); the checkpoint directory."""
    root = tmp_path_factory.mktemp("toy")
    s2s = [sys.executable, "-m", "s2s.cli"]
    subprocess.run([*s2s, "data", "prepare", "toy", "--transform", "reverse", "--train", "3000",
                    "--out", str(root / "data")], check=True, capture_output=True, timeout=300, cwd=REPO)
    config = yaml.safe_load((REPO / "configs" / "toy-reverse.yaml").read_text())
    for split in ("train", "dev", "test"):
        config["data"][split] = str(root / "data" / f"{split}.parquet")
    (root / "toy.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([*s2s, "train", "--config", str(root / "toy.yaml"), "--out", str(root / "run")],
                   check=True, capture_output=True, timeout=600, cwd=REPO)
    return root / "run" / "best"


@pytest.fixture(scope="package")
def ray_serve() -> Iterator[None]:
    """A Ray instance of this test package only (its own temp dir), with Serve and no HTTP proxy."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    with private_serve():
        yield


@pytest.fixture
def stream_app(request, ray_serve, kafka_bootstrap, topic_factory) -> Iterator[Callable[..., StreamApp]]:
    """``deploy(model, **options) -> StreamApp`` on fresh 3-partition topics; deleted afterwards.
    When the test failed, the replicas' stderr (Serve's log lines, s2s's warnings) is printed
    first, so a failure seen only in the full suite still says what the replicas saw."""
    from ray import serve

    deployed: list[StreamApp] = []

    def deploy(model: str | Path, **options) -> StreamApp:
        topics = {role: topic_factory(partitions=3, suffix=role) for role in ("in", "out", "dlq")}
        app = StreamApp.start(f"s2s-{uuid.uuid4().hex[:8]}", kafka_bootstrap, topics, str(model), **options)
        deployed.append(app)
        return app

    yield deploy
    for app in deployed:
        if failed_so_far(request):
            print(app.describe_topics())
            print(replica_stderr_tails(app.name))
        serve.delete(app.name)
