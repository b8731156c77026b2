"""Step-load benchmark of the autoscaling stream: low -> high -> low input rate.

    .venv/bin/python bench/step_load.py
    .venv/bin/python bench/step_load.py --low 100 --high 1000 --low-s 20 --high-s 60 --after-s 60
    .venv/bin/python bench/step_load.py --assignors cooperative-sticky,range   # the default: both, one run

Starts a private Kafka broker (unless $S2S_KAFKA_BOOTSTRAP names a cluster) and a private Ray
instance, deploys the streaming app with lag-driven ingress autoscaling (lag_policy.py) and
translators scaling on ongoing requests, and offers a step load. The model is an identity whose
decode takes ``--batch-cost-ms + --message-cost-ms`` per message of a batch, asleep (like a
model on an accelerator): a step above one replica's capacity builds lag that only more replicas
can work off, without the 2 cores of this machine deciding the outcome.

Every second it samples the replicas (running/target) of both deployments and the consumer
group's lag (log end - committed); end-to-end latency is producer send -> answer read back.
Each assignor in --assignors gets the same run in turn (cooperative-sticky moves only the
partitions that change owner when a replica comes or goes; range stops every member on every
rebalance), so the scale events' cost is compared side by side on one machine.

Results: bench/results/step_load.json and step_load-<assignor>.png; printed per assignor: the p99
latency while the ingress scales (the high phase), and the time from the step up until the lag
is back under the target lag.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import RESULTS, print_table, write_results  # noqa: E402
from bench.stream_bench import AnswerReader, Broker, produce  # noqa: E402
from tests.support.serve import private_serve  # noqa: E402
from s2s.stream.telemetry import percentile  # noqa: E402

LOADER = "bench.step_load:load_sleeping_identity"
P99_WINDOW_S = 5.0


class SleepingIdentity:
    """Texts back unchanged after sleeping batch cost + message cost x batch size."""

    def __init__(self, batch_cost_s: float, message_cost_s: float):
        self.name, self.version = "sleeping-identity", "0"
        self._batch_cost_s, self._message_cost_s = batch_cost_s, message_cost_s

    def best(self, texts, beam=None, max_len=None):
        time.sleep(self._batch_cost_s + self._message_cost_s * len(texts))  # the simulated decode
        return list(texts)


def load_sleeping_identity(path: str, device: str = "cpu") -> SleepingIdentity:
    """``path`` carries the costs as "BATCH_MS,MESSAGE_MS" (a route's model field)."""
    batch_ms, message_ms = (float(part) for part in path.split(","))
    return SleepingIdentity(batch_ms / 1000, message_ms / 1000)


# -- the app and its sampling -----------------------------------------------------------------

def deploy(bootstrap: str, topics: dict[str, str], name: str, args: argparse.Namespace) -> None:
    from ray import serve

    from s2s.stream.app import build_app
    from s2s.stream.config import stream_config_from_dict

    config = stream_config_from_dict({
        "kafka": {"bootstrap": bootstrap, "group_id": f"{name}-group", "dead_letter_topic": topics["dlq"],
                  "create_topics": False, "assignor": args.assignor},
        "ingress": {"autoscaling": {"min_replicas": 1, "max_replicas": args.partitions, "target_lag": args.target_lag,
                                    "upscale_delay_s": 2, "downscale_delay_s": args.downscale_delay_s,
                                    "look_back_period_s": 4, "metrics_interval_s": 1}},
        "routes": [{"name": "bench", "input_topic": topics["in"], "output_topic": topics["out"],
                    "model": f"{args.batch_cost_ms},{args.message_cost_ms}", "loader": LOADER, "num_cpus": 0.5,
                    "autoscaling": {"min_replicas": 1, "max_replicas": args.max_translators,
                                    "target_ongoing_requests": 2, "upscale_delay_s": 2,
                                    "downscale_delay_s": args.downscale_delay_s, "look_back_period_s": 4,
                                    "metrics_interval_s": 1}}]})
    serve.run(build_app(config), name=name, route_prefix=None)


def replicas(app_name: str) -> dict[str, tuple[int, int]]:
    """{deployment: (running, target)} from the Serve controller."""
    from ray.serve.context import _get_global_client

    from s2s.stream.status import replica_counts

    app = _get_global_client().get_serve_details()["applications"][app_name]
    # translator-bench-<model hash> -> translator-bench
    return {name.rsplit("-", 1)[0] if name.startswith("translator-") else name: replica_counts(details)
            for name, details in app["deployments"].items()}


class Sampler:
    """Every second: elapsed time, offered phase, replicas, group lag."""

    def __init__(self, bootstrap: str, app_name: str, group_id: str, topic: str):
        self.samples: list[dict] = []
        self._bootstrap, self._app_name, self._group_id, self._topic = bootstrap, app_name, group_id, topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.phase = ("idle", 0.0)
        self.started = 0.0  # set by start()

    def start(self) -> None:
        self.started = time.time()
        self._thread.start()

    def _run(self) -> None:
        from s2s.stream.status import group_lag

        while not self._stop.wait(1.0):
            counts = replicas(self._app_name)
            lag = sum(group_lag(self._bootstrap, self._group_id, [self._topic]).values())
            self.samples.append({"t": round(time.time() - self.started, 2), "phase": self.phase[0],
                                 "offered": self.phase[1], "lag": lag,
                                 **{f"{name}_running": running for name, (running, _) in counts.items()},
                                 **{f"{name}_target": target for name, (_, target) in counts.items()}})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# -- the run ----------------------------------------------------------------------------------

def phase_records(phases: list[tuple[str, float, float]]) -> list[list[tuple[bytes, bytes]]]:
    """The keyed records of each (name, rate, seconds) phase."""
    return [[(f"{name}-{i}".encode(), f"text {i} of {name}".encode()) for i in range(int(rate * seconds))]
            for name, rate, seconds in phases]


def offer(bootstrap: str, topic: str, phases: list[tuple[str, float, float]], records: list[list[tuple[bytes, bytes]]],
          sampler: Sampler, sent_ms: dict[bytes, float]) -> dict[str, float]:
    """Produce each phase's records in turn at its rate; returns each phase's start (s since the sampler's)."""
    starts = {}
    for (name, rate, _), keyed in zip(phases, records):
        sampler.phase = (name, rate)
        starts[name] = time.time() - sampler.started
        produce(bootstrap, topic, keyed, rate, sent_ms)
    sampler.phase = ("drain", 0.0)
    return starts


def recovery_s(samples: list[dict], step_t: float, target_lag: int) -> float | None:
    """Seconds from the step up until the lag, once above target, is back under it (0: it
    never went above; None: it never came back)."""
    after = [s for s in samples if s["t"] >= step_t]
    above = next((i for i, s in enumerate(after) if s["lag"] > target_lag), None)
    if above is None:
        return 0.0
    back = next((s for s in after[above:] if s["lag"] <= target_lag), None)
    return None if back is None else round(back["t"] - step_t, 1)


def p99_over_time(sent_ms: dict, received_ms: dict, started: float) -> list[dict]:
    """p99 end-to-end latency of the answers received in each P99_WINDOW_S window."""
    windows: dict[int, list[float]] = {}
    for key, received in received_ms.items():
        if key in sent_ms:
            windows.setdefault(int((received / 1000 - started) // P99_WINDOW_S), []).append(received - sent_ms[key])
    return [{"t": (w + 1) * P99_WINDOW_S, "answers": len(v), "p99_ms": percentile(sorted(v), 99)}
            for w, v in sorted(windows.items())]


def run(args: argparse.Namespace, bootstrap: str) -> dict:
    from ray import serve

    from s2s.stream.kafka_admin import create_topics, delete_topics

    name = f"step-{uuid.uuid4().hex[:8]}"
    topics = {role: f"{name}-{role}" for role in ("in", "out", "dlq")}
    create_topics(bootstrap, topics.values(), partitions=args.partitions)
    deploy(bootstrap, topics, name, args)
    phases = [("low", args.low, args.low_s), ("high", args.high, args.high_s), ("after", args.low, args.after_s)]
    records = phase_records(phases)
    keys = {key for keyed in records for key, _ in keyed}
    reader = AnswerReader(bootstrap, topics["out"])
    # Answers are timed as they arrive, on their own thread, while the load is offered.
    reading = threading.Thread(target=reader.collect, args=(keys, sum(p[2] for p in phases) + args.timeout))
    sampler = Sampler(bootstrap, name, f"{name}-group", topics["in"])
    sent_ms: dict[bytes, float] = {}
    try:
        sampler.start()
        reading.start()
        starts = offer(bootstrap, topics["in"], phases, records, sampler, sent_ms)
        reading.join()
        sampler.stop()
    finally:
        reader.close()
        serve.delete(name)
        delete_topics(bootstrap, topics.values())
    received = reader.received_ms
    return summarize(args, sampler, starts, sent_ms, received)


def summarize(args, sampler: Sampler, starts: dict, sent_ms: dict, received: dict) -> dict:
    samples = sampler.samples
    latencies = p99_over_time(sent_ms, received, sampler.started)
    by_phase = {}
    for phase in ("low", "high", "after"):
        keys = [k for k in sent_ms if k.decode().startswith(f"{phase}-") and k in received]
        by_phase[phase] = percentile(sorted(received[k] - sent_ms[k] for k in keys), 99)
    return {"samples": samples, "p99_over_time": latencies, "phase_starts_s": starts, "p99_ms_by_phase": by_phase,
            "recovery_s": recovery_s(samples, starts["high"], args.target_lag),
            "max_lag": max((s["lag"] for s in samples), default=0),
            "max_ingress_replicas": max((s.get("ingress_running", 0) for s in samples), default=0),
            "max_translator_replicas": max((s.get("translator-bench_running", 0) for s in samples), default=0),
            "sent": len(sent_ms), "lost": len(set(sent_ms) - set(received)), "settings": dict(vars(args)),
            "load_average_after": os.getloadavg()}


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = results["samples"]
    t = [s["t"] for s in samples]
    fig, (load, reps, lag, lat) = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    load.step(t, [s["offered"] for s in samples], where="post")
    load.set_ylabel("offered msg/s")
    for deployment in ("ingress", "translator-bench"):
        reps.step(t, [s.get(f"{deployment}_running", 0) for s in samples], where="post", label=f"{deployment} running")
        reps.step(t, [s.get(f"{deployment}_target", 0) for s in samples], where="post", linestyle=":",
                  label=f"{deployment} target")
    reps.set_ylabel("replicas")
    reps.legend(fontsize=8)
    lag.plot(t, [s["lag"] for s in samples])
    lag.axhline(results["settings"]["target_lag"], color="grey", linestyle="--", label="target lag")
    lag.set_ylabel("group lag (records)")
    lag.legend(fontsize=8)
    lat.plot([w["t"] for w in results["p99_over_time"]], [w["p99_ms"] for w in results["p99_over_time"]], marker=".")
    lat.set_ylabel(f"p99 latency ms ({P99_WINDOW_S:.0f} s windows)")
    lat.set_xlabel("seconds")
    for ax in (load, reps, lag, lat):
        for start in results["phase_starts_s"].values():
            ax.axvline(start, color="lightgrey", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--low", type=float, default=100.0, help="messages/s before and after the step")
    p.add_argument("--high", type=float, default=1000.0, help="messages/s during the step")
    p.add_argument("--low-s", type=float, default=20.0, help="seconds of low rate before the step")
    p.add_argument("--high-s", type=float, default=60.0, help="seconds of the step")
    p.add_argument("--after-s", type=float, default=60.0, help="seconds of low rate after it")
    p.add_argument("--target-lag", type=int, default=500, help="ingress autoscaling target_lag")
    p.add_argument("--partitions", type=int, default=3, help="input partitions = most ingress replicas")
    p.add_argument("--max-translators", type=int, default=3)
    p.add_argument("--batch-cost-ms", type=float, default=50.0, help="simulated decode cost per batch")
    p.add_argument("--message-cost-ms", type=float, default=2.0, help="...plus this per message of the batch")
    p.add_argument("--downscale-delay-s", type=float, default=15.0)
    p.add_argument("--timeout", type=float, default=120.0, help="for the last answers after the load ends")
    p.add_argument("--assignors", default="cooperative-sticky,range",
                   help="kafka.assignor of each run, in turn (comma-separated)")
    return p.parse_args()


def report(results: dict, png: Path) -> None:
    rows = [[w["t"], w["answers"], w["p99_ms"]] for w in results["p99_over_time"]]
    print_table(["t s", "answers", "p99 ms"], rows)
    print(f"sent {results['sent']}, lost {results['lost']}; max lag {results['max_lag']:,}; "
          f"max replicas: ingress {results['max_ingress_replicas']}, translator {results['max_translator_replicas']}")
    print(f"p99 by phase (ms): {results['p99_ms_by_phase']}")
    recovery = results["recovery_s"]
    print("time from the step up to lag back under target: "
          + ("never within the run" if recovery is None else f"{recovery:.1f} s"))
    print(f"plot: {png}")


def compare(results: dict[str, dict]) -> None:
    """One row per assignor: what the scale events cost."""
    rows = [[name, r["p99_ms_by_phase"]["high"], r["p99_ms_by_phase"]["after"],
             "never" if r["recovery_s"] is None else round(r["recovery_s"], 1), r["max_lag"], r["lost"]]
            for name, r in results.items()]
    print_table(["assignor", "p99 ms (step)", "p99 ms (after)", "lag back under target s", "max lag", "lost"], rows)


def main() -> int:
    args = parse_args()
    broker = Broker()
    results = {}
    try:
        # The replicas import this file's loader: the repository must be on their path.
        with private_serve(runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}}):
            for assignor in args.assignors.split(","):
                args.assignor = assignor
                results[assignor] = run(args, broker.bootstrap)
    finally:
        broker.stop()
    path = write_results("step_load", results)
    for assignor, result in results.items():
        print(f"\n== {assignor}")
        report(result, plot(result, RESULTS / f"step_load-{assignor}.png"))
    print()
    compare(results)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
