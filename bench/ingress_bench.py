"""The ingress's own cost: its poll loop draining a backlog, beside kafka-python alone and,
optionally, the loop of another commit.

    .venv/bin/python bench/ingress_bench.py
    .venv/bin/python bench/ingress_bench.py --baseline HEAD~1 --messages 50000 --rounds 3

No Ray and no model: one PollLoop (the real consumer, the real at-least-once Delivery, the
real answer building) whose translator calls are answered in-process by the identity model, on
a private Kafka broker (or $S2S_KAFKA_BOOTSTRAP's). One backlog is produced once; each round
drains all of it once with the relay below, once with the baseline's code (with --baseline) and
once with this checkout's, in turns, each in a fresh process with a fresh consumer group, so all
read the same records from the same broker in the same minutes (each child has 900 s, then it is
killed and the benchmark fails). The rate is records answered per second from the first record
polled to the last answer acknowledged (the group join is left out); "CPU s per s" is the
process's CPU time over the same span (all its threads: near 1.0, the one interpreter is
saturated, and work moved between its threads cannot raise the rate). The baseline is checked
out into a temporary git worktree, removed afterwards.

The "kafka-python relay" row is the ceiling the client library sets: the same consumer and
producer settings, a loop that sends each polled record straight back out (with a copy of the
headers an answer carries), flushes after each poll and commits every commit_interval_ms as the
at-least-once delivery does, and no s2s code. No ingress built on kafka-python in one
interpreter can beat it, so the loop's rate over the relay's says how much of the ingress's
cost is s2s's own.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def drain(bootstrap: str, topic: str, messages: int, poll_records: int) -> dict:
    """Run one poll loop until it has answered ``messages`` records (the code of whichever s2s
    this process imports); returns its rate."""
    from concurrent.futures import Future

    from kafka import KafkaConsumer, KafkaProducer

    import s2s
    from s2s.stream.config import stream_config_from_dict
    from s2s.stream.delivery import AtLeastOnceDelivery
    from s2s.stream.kafka_clients import consumer_configs, producer_configs
    from s2s.stream.models import answer_lists, load_identity_model
    from s2s.stream.poll_loop import PollLoop

    config = stream_config_from_dict({
        "kafka": {"bootstrap": bootstrap, "group_id": f"ingress-bench-{uuid.uuid4().hex[:8]}",
                  "dead_letter_topic": f"{topic}-dlq", "create_topics": False, "auto_offset_reset": "earliest",
                  "max_poll_records": poll_records, "max_in_flight": 8 * poll_records},
        "routes": [{"name": "bench", "input_topic": topic, "output_topic": f"{topic}-out", "model": "identity",
                    "loader": "s2s.stream.models:load_identity_model"}]})
    model = load_identity_model("identity")

    def submit(route, items, alone):
        answered = Future()
        answered.set_result(answer_lists(model, [items])[0])
        return answered

    loop = PollLoop(config, submit, lambda: KafkaConsumer(**consumer_configs(config.kafka, "ingress-bench")),
                    AtLeastOnceDelivery(lambda: KafkaProducer(**producer_configs(config.kafka, "ingress-bench")),
                                        config.kafka.flush_timeout_s), NullObserver())
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    first_polled = wait_for(lambda: loop.stats.polled > 0, 120)
    cpu_before = time.process_time()
    done = wait_for(lambda: loop.stats.answered >= messages, 600)
    cpu_s = time.process_time() - cpu_before
    stop.set()
    runner.join(60)
    # CPU seconds of all its threads per second: near 1.0, one interpreter is the limit (the GIL).
    return {"s2s": str(Path(s2s.__file__).parent), "answered": loop.stats.answered, "rewinds": loop.stats.rewinds,
            "msgs_per_s": loop.stats.answered / (done - first_polled), "cpu_per_s": cpu_s / (done - first_polled)}


def relay(bootstrap: str, topic: str, messages: int, poll_records: int) -> dict:
    """kafka-python alone: poll, send every record back out, flush, commit now and then, until
    ``messages`` records are relayed; returns its rate (the span and CPU measure of ``drain``,
    up to the last flush and commit)."""
    from kafka import KafkaConsumer, KafkaProducer

    from s2s.stream import headers as hdr
    from s2s.stream.config import KafkaSettings
    from s2s.stream.kafka_clients import consumer_configs, producer_configs

    settings = KafkaSettings(bootstrap=bootstrap, group_id=f"ingress-relay-{uuid.uuid4().hex[:8]}",
                             auto_offset_reset="earliest", max_poll_records=poll_records,
                             max_in_flight=8 * poll_records)
    consumer = KafkaConsumer(topic, **consumer_configs(settings, "ingress-relay"))
    producer = KafkaProducer(**producer_configs(settings, "ingress-relay"))
    relayed, out, headers, first_polled, cpu_before = 0, f"{topic}-out", None, None, 0.0
    last_commit = time.perf_counter()
    while relayed < messages:
        polled = consumer.poll(timeout_ms=100, max_records=poll_records)
        for records in polled.values():
            if first_polled is None:
                first_polled, cpu_before = time.perf_counter(), time.process_time()
                headers = hdr.output_headers(records[0], "0" * 16, "identity", "identity", 0)
            for record in records:
                producer.send(out, key=record.key, value=record.value, headers=headers)
            relayed += len(records)
        producer.flush()
        if time.perf_counter() - last_commit >= settings.commit_interval_ms / 1000:
            consumer.commit()   # as often as the poll loop commits
            last_commit = time.perf_counter()
    consumer.commit()
    done, cpu_s = time.perf_counter(), time.process_time() - cpu_before
    producer.close()
    consumer.close()
    return {"s2s": None, "answered": relayed, "rewinds": 0, "msgs_per_s": relayed / (done - first_polled),
            "cpu_per_s": cpu_s / (done - first_polled)}


class NullObserver:
    def polled(self, records) -> None: ...

    def delivered(self, records, outputs, acked_ms) -> None: ...

    def lag(self, lags) -> None: ...


def wait_for(condition, timeout_s: float) -> float:
    """Poll ``condition`` every 10 ms (more often would take the GIL from the loop it times);
    the time it first held."""
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the poll loop did not get there in time")
        time.sleep(0.01)
    return time.perf_counter()


def produce_backlog(bootstrap: str, topic: str, messages: int) -> None:
    from bench.stream_bench import produce
    from s2s.stream.kafka_admin import create_topics

    create_topics(bootstrap, [topic, f"{topic}-out", f"{topic}-dlq"], partitions=3)
    produce(bootstrap, topic, [(f"k{i}".encode(), f"a b c d e f g h {i}".encode()) for i in range(messages)], 0, {})


RELAY = "kafka-python relay"


def drain_with(tree: Path | None, args: argparse.Namespace, topic: str) -> dict:
    """One drain in a fresh process that imports s2s from ``tree`` (None: the relay, in this
    checkout)."""
    env = dict(os.environ, PYTHONPATH=str(tree or REPO))
    out = subprocess.run([sys.executable, str(REPO / "bench" / "ingress_bench.py"),
                          "--relay" if tree is None else "--drain", "--bootstrap",
                          args.bootstrap, "--topic", topic, "--messages", str(args.messages),
                          "--poll-records", str(args.poll_records)],
                         env=env, cwd=tree or REPO, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if tree is not None and Path(result["s2s"]).resolve() != (tree / "s2s").resolve():
        raise RuntimeError(f"the drain imported {result['s2s']}, not {tree / 's2s'}")
    return result


def compare(args: argparse.Namespace, baseline: Path | None) -> dict:
    """Each round: the relay, the baseline (if any), this checkout, one after another."""
    topic = f"ingress-bench-{uuid.uuid4().hex[:8]}"
    produce_backlog(args.bootstrap, topic, args.messages)
    trees = {RELAY: None, **({"baseline": baseline} if baseline else {}), "this checkout": REPO}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for number in range(1, args.rounds + 1):
        for name, tree in trees.items():
            result = drain_with(tree, args, topic)
            rates[name].append(result["msgs_per_s"])
            cpu[name].append(result["cpu_per_s"])
            print(f"round {number}, {name}: {result['msgs_per_s']:,.0f} msg/s, {result['cpu_per_s']:.2f} CPU s/s "
                  f"({result['rewinds']} rewinds)", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {f"this checkout / {name}": medians["this checkout"] / medians[name] for name in trees
              if name != "this checkout"}
    return {"rates": rates, "cpu_per_s": cpu, "medians": medians, "ratios": ratios}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", help="a git commit whose poll loop runs beside this checkout's")
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--poll-records", type=int, default=256)
    p.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)  # one drain, in a child process
    p.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)  # the relay, in a child process
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    p.add_argument("--topic", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.drain or args.relay:
        run_one = drain if args.drain else relay
        print(json.dumps(run_one(args.bootstrap, args.topic, args.messages, args.poll_records)))
        return 0
    sys.path.insert(0, str(REPO))
    from bench.common import write_results

    commit, baseline = checkout_baseline(args.baseline) if args.baseline else (None, None)
    try:
        results = measure(args, baseline)
    finally:
        if baseline is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=REPO, capture_output=True)
            shutil.rmtree(baseline.parent, ignore_errors=True)
    report({"baseline": commit, **results})
    print(f"written: {write_results('ingress_bench', {'baseline': commit, **results})}")
    return 0


def checkout_baseline(rev: str) -> tuple[str, Path]:
    """``rev``'s short hash and a temporary worktree of it (the caller removes it)."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    baseline = Path(tempfile.mkdtemp(prefix="s2s-baseline-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(baseline), commit], cwd=REPO, check=True,
                   capture_output=True)
    return commit, baseline


def measure(args: argparse.Namespace, baseline: Path | None) -> dict:
    from bench.stream_bench import Broker

    broker = Broker()
    try:
        args.bootstrap = broker.bootstrap
        load_before = os.getloadavg()
        return {**compare(args, baseline), "load_average": {"before": load_before, "after": os.getloadavg()},
                "settings": vars(args)}
    finally:
        broker.stop()


def report(results: dict) -> None:
    from bench.common import print_table

    print_table(["code", "median msg/s", "rounds", "CPU s per s"],
                [[name if name != "baseline" else f"baseline {results['baseline']}", results["medians"][name],
                  " / ".join(f"{r:,.0f}" for r in rates), " / ".join(f"{c:.2f}" for c in results["cpu_per_s"][name])]
                 for name, rates in results["rates"].items()])
    print("; ".join(f"{name}: {ratio:.2f}x" for name, ratio in results["ratios"].items())
          + f"; load before/after {results['load_average']['before']} / {results['load_average']['after']}")


if __name__ == "__main__":
    sys.exit(main())
