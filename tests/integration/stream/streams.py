"""Helpers for the streaming tests: deploy an app, produce keyed texts, read answers back."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from s2s.stream import headers as hdr
from s2s.stream.kafka_admin import end_offsets

TOKENS = list("abcdefghij") + [str(n) for n in range(10)]  # the toy task's symbols


def toy_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct-enough toy sources of 3-8 tokens."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(TOKENS) for _ in range(rng.randint(3, 8))) for _ in range(count)]


# One input of every bad class; too_large needs limits.max_bytes=300, model_error the
# loaders.py model that fails on "boom".
BAD_INPUTS = {  # key -> (value, reason)
    b"bad-utf8": (b"\xc3\x28 broken", "not_utf8"),
    b"bad-json": (b'{"text": "a b" ', "bad_json"),
    b"bad-empty": (b"   ", "empty_text"),
    b"bad-empty-envelope": (b'{"text": ""}', "empty_text"),
    b"bad-large": (b"a " * 200, "too_large"),
    b"bad-task": (b'{"text": "a b c", "task": "summarization"}', "unknown_task"),
    b"bad-field": (b'{"text": "a b c", "beam": 99}', "bad_field"),
    b"bad-model": (b"a boom c", "model_error"),
}


@dataclass
class StreamApp:
    name: str
    bootstrap: str
    topics: dict[str, str]  # "in", "out", "dlq" -> topic name
    group_id: str

    @classmethod
    def start(cls, name: str, bootstrap: str, topics: dict[str, str], model: str, *,
              delivery: str = "at_least_once", ingress_replicas: int = 1, translator_replicas: int = 1,
              loader: str | None = None, limits: dict | None = None, ingress: dict | None = None,
              route: dict | None = None, **kafka) -> "StreamApp":
        """serve.run the streaming app for ``topics`` (blocks until its replicas are up); run again
        with the same name and topics, it updates the running application in place. ``ingress``
        and ``route`` add options; with an ``autoscaling`` section the fixed replica count goes."""
        from ray import serve

        from s2s.stream.app import build_app
        from s2s.stream.config import stream_config_from_dict

        route = {"name": "toy", "input_topic": topics["in"], "output_topic": topics["out"], "model": model,
                 "device": "cpu", "num_cpus": 1, "num_replicas": translator_replicas, "max_decode_s": 25,
                 **(route or {})}
        if loader:
            route["loader"] = loader
        ingress = {"num_replicas": ingress_replicas, "drain_timeout_s": 4, "call_timeout_s": 60, **(ingress or {})}
        for options in (route, ingress):
            if "autoscaling" in options:
                del options["num_replicas"]
        settings = {"bootstrap": bootstrap, "group_id": f"{name}-group", "dead_letter_topic": topics["dlq"],
                    "delivery": delivery, "create_topics": False, "session_timeout_ms": 20_000,
                    # drain 4 s + flush 8 s + a send blocked 5 s fit in the 20 s session timeout
                    "heartbeat_interval_ms": 1_000, "flush_timeout_s": 8, "max_block_ms": 5_000,
                    "transaction_timeout_ms": 6_000, **kafka}
        config = stream_config_from_dict({"kafka": settings, "routes": [route], "limits": limits or {},
                                          "ingress": ingress})
        serve.run(build_app(config), name=name, route_prefix=None)
        return cls(name, bootstrap, topics, settings["group_id"])

    def stats(self) -> list[dict]:
        """Counters of every live ingress replica."""
        from s2s.stream.local import app_stats

        return app_stats(self.name)

    def describe_topics(self) -> str:
        """End offsets of the app's topics and its group's lag: whether answers were written at
        all tells a stalled app from a reader that read nothing."""
        from s2s.stream.status import group_lag

        try:
            ends = {role: end_offsets(self.bootstrap, topic) for role, topic in self.topics.items()}
            return f"end offsets {ends}; group lag {group_lag(self.bootstrap, self.group_id, [self.topics['in']])}"
        except Exception as err:  # noqa: BLE001 - a failure report must not fail in turn
            return f"topics not described: {err!r}"

    def ingress_replicas(self) -> int:
        """Running ingress replicas as Serve counts them."""
        from ray import serve
        from ray.serve._private.common import ReplicaState

        deployment = serve.status().applications[self.name].deployments["ingress"]
        return deployment.replica_states.get(ReplicaState.RUNNING, 0)

    def lag(self) -> int:
        from s2s.stream.status import group_lag

        return sum(group_lag(self.bootstrap, self.group_id, [self.topics["in"]]).values())


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]], pace_per_s: float = 0,
            **configs) -> None:
    """Send (key, value) pairs with acks=all, optionally paced; raises if any is not acked."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **configs)
    try:
        start = time.monotonic()
        futures = []
        for i, (key, value) in enumerate(items):
            if pace_per_s:
                delay = start + i / pace_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load, not synchronizing
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush(timeout=180)
        for future in futures:
            future.get(timeout=1)
    finally:
        producer.close(timeout=30)


class TopicReader:
    """Reads every partition of a topic from the beginning, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str, read_committed: bool = False):
        self.records: list = []
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                       isolation_level="read_committed" if read_committed else "read_uncommitted")
        partitions = self._partitions(topic)
        self._consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self._consumer.seek_to_beginning()

    def _partitions(self, topic: str, timeout_s: float = 30) -> set[int]:
        """The topic's partitions, asked again while the broker's metadata lacks the new topic:
        assigned nothing, the reader would read nothing and a test would wait out its timeout."""
        deadline = time.monotonic() + timeout_s
        while not (partitions := self._consumer.partitions_for_topic(topic)):
            assert time.monotonic() < deadline, f"topic {topic} has no partitions after {timeout_s:g} s"
            time.sleep(0.2)  # the metadata of a topic just created reaches the broker's cache shortly
        return partitions

    def read_until(self, done, timeout_s: float) -> list:
        """Poll until ``done(records)`` holds or ``timeout_s`` passes; returns all records read."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records) and time.monotonic() < deadline:
            for batch in self._consumer.poll(timeout_ms=500).values():
                self.records.extend(batch)
        return self.records

    def read_to_end(self, timeout_s: float) -> list:
        """Poll until every partition is read up to its end offset as of now (for a read_committed
        reader, its last stable offset); returns all records read."""
        ends = self._consumer.end_offsets(list(self._consumer.assignment()))
        return self.read_until(lambda _: all(self._consumer.position(tp) >= end for tp, end in ends.items()),
                               timeout_s)

    def close(self) -> None:
        self._consumer.close()


def keyed(count: int, tag: str) -> list[tuple[bytes, bytes]]:
    """``count`` records with keys TAG-0, TAG-1, ... and texts the toy model can read."""
    return [(f"{tag}-{i}".encode(), f"text {i} of {tag}".encode()) for i in range(count)]


def keys_of(records) -> set[bytes]:
    return {record.key for record in records}


def by_key(records) -> dict[bytes, list]:
    grouped = defaultdict(list)
    for record in records:
        grouped[record.key].append(record)
    return grouped


def read_answers(bootstrap: str, topic: str, keys: set[bytes], timeout_s: float, read_committed: bool = False) -> list:
    """Every record of ``topic`` read until all ``keys`` have an answer (or the timeout)."""
    reader = TopicReader(bootstrap, topic, read_committed)
    try:
        return reader.read_until(lambda records: keys <= keys_of(records), timeout_s)
    finally:
        reader.close()


def wait_for_commits(bootstrap: str, app: StreamApp, timeout_s: float = 60) -> dict[int, int]:
    """Poll the group's committed offsets until they reach the input's end offsets."""
    target = end_offsets(bootstrap, app.topics["in"])
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=app.group_id, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            committed = {p: consumer.committed(TopicPartition(app.topics["in"], p)) for p in target}
            if committed == target or time.monotonic() > deadline:
                return committed
            time.sleep(0.5)  # polling the broker's view; there is no event to wait on
    finally:
        consumer.close(autocommit=False)


def assert_all_committed(app: StreamApp, timeout_s: float = 60) -> None:
    """The group's committed offsets reach the input's end; if not, the message carries the
    ingress counters (commit failures, the last error) that say why."""
    target = end_offsets(app.bootstrap, app.topics["in"])
    committed = wait_for_commits(app.bootstrap, app, timeout_s)
    assert committed == target, f"committed {committed}, input ends at {target}; ingress counters: {app.stats()}"


def header(record, name: str) -> str:
    return hdr.as_dict(record.headers).get(name, "")


def replica_actors(app_name: str, deployment: str) -> list:
    """The live replica actors of the deployment whose name starts with ``deployment`` (Serve names
    them SERVE_REPLICA::app#deployment#id; a translator's name ends with its model's hash)."""
    import ray

    prefix = f"SERVE_REPLICA::{app_name}#{deployment}"
    names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))
    assert names, f"no replica of {deployment} in {app_name}"
    return [ray.get_actor(name, namespace="serve") for name in names]


def kill_replica(app: StreamApp, deployment: str) -> None:
    """Kill one replica of ``deployment`` the hard way; Serve starts a replacement."""
    import ray

    ray.kill(replica_actors(app.name, deployment)[0], no_restart=True)


def kill_busy_replica(app: StreamApp, deployment: str, timeout_s: float = 30) -> int:
    """Kill a replica of ``deployment`` while it is decoding (the busiest one found within
    ``timeout_s``); returns the calls it had running.

    Which replica a caller's handle picks is Serve's choice: a replica picked by name alone was
    sometimes idle when killed (two ingress replicas sending few large calls), so nothing failed
    and nothing was retried. Serve's replica actor counts its running requests (a private API,
    as are the actor names above)."""
    import ray

    busiest: dict = {}

    def one_is_busy() -> bool:
        actors = replica_actors(app.name, deployment)
        running = ray.get([actor.get_num_ongoing_requests.remote() for actor in actors], timeout=30)
        busiest["actor"], busiest["running"] = max(zip(actors, running), key=lambda pair: pair[1])
        return busiest["running"] > 0

    wait_for(one_is_busy, timeout_s)
    ray.kill(busiest["actor"], no_restart=True)
    return busiest["running"]


def restart_broker(kafka_broker) -> str:
    """Stop the broker (SIGTERM) and start it again once it is down; says how long it was away."""
    stopping = time.monotonic()
    for command in ("stop", "start"):
        result = kafka_broker.kafka_sh(command)
        assert result.returncode == 0, result.stderr
    return f"away {time.monotonic() - stopping:.0f}s"


def produce_in_background(bootstrap: str, topic: str, items, pace_per_s: float) -> threading.Thread:
    errors: list[BaseException] = []

    def run():
        try:
            produce(bootstrap, topic, items, pace_per_s=pace_per_s, delivery_timeout_ms=170_000)
        except BaseException as err:  # noqa: BLE001 - re-raised by the test below
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors
    thread.start()
    return thread


def wait_for(condition, timeout_s: float) -> bool:
    """Poll ``condition`` (replica counters; there is no event to wait on) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
