"""Streaming benchmark: Kafka -> Ray Serve -> Kafka, against decoding in-process.

    .venv/bin/python bench/stream_bench.py
    .venv/bin/python bench/stream_bench.py --model runs/toy-reverse/best --messages 3000 --rounds 1
    .venv/bin/python bench/stream_bench.py --pipelines identity    # the pipeline's own cost only
    .venv/bin/python bench/stream_bench.py --model runs/bible-en-fr/best --texts verses.txt --precisions fp32,int8

Starts what it needs and stops it afterwards: a private Kafka broker (unless
$S2S_KAFKA_BOOTSTRAP names a cluster), a private Ray instance, and, without --model, a toy reverse
model trained into a temporary directory (~30 s). It then measures

1. capacity, in --rounds paired rounds: the in-process ceiling (the same model decoding the same
   texts, ``max_batch_size`` texts per call, on as many torch threads as the translator replica
   has CPUs), then the model behind Kafka + Serve draining a backlog of --messages records on a
   fresh deployment; after the last round the ceiling once more. Each backlog is compared with
   the mean of the ceilings measured just before and just after it, so a busy spell of the
   (shared, noisy) machine weighs on both sides alike; the median round is the result;
2. at fractions of the median ceiling: end-to-end latency (producer send -> answer read back)
   and achieved messages/s;
3. the identity model (a loader that returns the text) the same way: the pipeline's own cost.

With ``--precisions fp32,int8`` every capacity round measures the model in both forms in turns
(the int8 one is the route's ``quantize: int8``, and its ceiling decodes in int8 in-process
too), and the offered-load runs follow for each; the summary gives the int8 backlog's rate as a
multiple of the fp32 one's, round by round.

Results go to bench/results/stream_bench.json and a table is printed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import print_table, write_results  # noqa: E402
from s2s.localhost import free_ports  # noqa: E402
from s2s.quantization import QUANTIZATIONS  # noqa: E402
from s2s.stream.local import replicas_at_normal_priority  # noqa: E402
from tests.support.serve import private_serve  # noqa: E402
from s2s.stream.telemetry import DecodeTotals, percentile  # noqa: E402

KAFKA_SH = REPO / "cluster" / "kafka" / "kafka.sh"
TOKENS = list("abcdefghij") + [str(n) for n in range(10)]
MODEL_TARGET = 0.80       # of the in-process ceiling
MODEL_LOADER = "s2s.stream.models:load_checkpoint_model"
IDENTITY_TARGET = 20_000.0  # messages/s, backlog (issue 15)
PRECISIONS = ("fp32", *QUANTIZATIONS)  # fp32: the checkpoint as stored; the rest: a route's quantize


# -- infrastructure ---------------------------------------------------------------------------

class Broker:
    """$S2S_KAFKA_BOOTSTRAP's cluster, or a broker of this run only (stopped and deleted at exit)."""

    def __init__(self) -> None:
        self.bootstrap = os.environ.get("S2S_KAFKA_BOOTSTRAP", "").strip()
        self.env: dict[str, str] | None = None
        if not self.bootstrap:
            port, controller = free_ports(2)
            self.env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller),
                            KAFKA_HOME_DIR=str(REPO / ".kafka" / f"bench-{port}"))
            subprocess.run(["bash", str(KAFKA_SH), "start"], env=self.env, check=True, timeout=900)
            self.bootstrap = f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self.env is not None:
            subprocess.run(["bash", str(KAFKA_SH), "stop"], env=self.env, timeout=120)
            shutil.rmtree(self.env["KAFKA_HOME_DIR"], ignore_errors=True)


def train_toy(workdir: Path) -> Path:
    """The toy reverse model, trained into ``workdir`` (what the tests use too)."""
    s2s = [sys.executable, "-m", "s2s.cli"]
    subprocess.run([*s2s, "data", "prepare", "toy", "--transform", "reverse", "--out", str(workdir / "data")],
                   check=True, capture_output=True, cwd=REPO, timeout=300)
    config = yaml.safe_load((REPO / "configs" / "toy-reverse.yaml").read_text())
    for split in ("train", "dev", "test"):
        config["data"][split] = str(workdir / "data" / f"{split}.parquet")
    (workdir / "toy.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([*s2s, "train", "--config", str(workdir / "toy.yaml"), "--out", str(workdir / "run")],
                   check=True, capture_output=True, cwd=REPO, timeout=900)
    return workdir / "run" / "best"


def toy_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TOKENS) for _ in range(rng.randint(3, 10))) for _ in range(count)]


def read_texts(path: str | None, count: int) -> list[str]:
    if path is None:
        return toy_texts(count)
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [lines[i % len(lines)] for i in range(count)]


# -- measurements -----------------------------------------------------------------------------

def route_quantize(precision: str) -> str | None:
    """A route's ``quantize`` for a --precisions entry: fp32 is the checkpoint as stored."""
    return None if precision == "fp32" else precision


def in_process_rate(model: Path, texts: list[str], batch: int, threads: int, precision: str = "fp32") -> float:
    """Messages/s of Translator.best over ``texts`` in calls of ``batch``, on ``threads`` threads."""
    import torch

    from s2s.prediction import Translator

    torch.set_num_threads(threads)
    translator = Translator.from_checkpoint(model, device="cpu", quantize=route_quantize(precision))
    translator.best(texts[:batch])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        translator.best(texts[start:start + batch])
    return len(texts) / (time.perf_counter() - started)


@dataclasses.dataclass
class Timing:
    sent_ms: dict[bytes, float]
    received_ms: dict[bytes, float]

    def summary(self, with_latency: bool = True) -> dict[str, float | None]:
        """Messages/s from the first answer read back to the last (a run that keeps up matches
        the offered rate), and send -> read-back latency percentiles.

        The rate is taken over the second half of the answers: the first ones arrive in bursts
        once the app's producer is connected, with decodes done before the first answer."""
        keys = [k for k in self.sent_ms if k in self.received_ms]
        received = sorted(self.received_ms[k] for k in keys)
        half = received[len(received) // 2:]
        span_s = (half[-1] - half[0]) / 1000 if len(half) > 1 else 0.0
        latencies = sorted(self.received_ms[k] - self.sent_ms[k] for k in keys) if with_latency else []
        return {"messages": len(keys), "lost": len(self.sent_ms) - len(keys),
                "msgs_per_s": (len(half) - 1) / span_s if span_s > 0 else 0.0,
                "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
                "p99_ms": percentile(latencies, 99)}


DECODE_TOTALS = tuple(DecodeTotals().snapshot())   # batches, messages, decode_s, cpu_s


def decoder_use(before: dict, after: dict) -> dict[str, float | None]:
    """What the translators did between two snapshots: decode batches, their mean size, decode
    ms per message, the fraction of the span spent decoding (near 1: the decoder is the
    bottleneck) and the replicas' CPU seconds per second (all their threads)."""
    span = after["at"] - before["at"]
    done = {key: after[key] - before[key] for key in DECODE_TOTALS}
    return {"decode_batches": done["batches"],
            "mean_batch": done["messages"] / done["batches"] if done["batches"] else None,
            "decode_ms_per_msg": 1000 * done["decode_s"] / done["messages"] if done["messages"] else None,
            "decode_busy": done["decode_s"] / span, "translator_cpu_per_s": done["cpu_s"] / span}


def produce(bootstrap: str, topic: str, keyed: list[tuple[bytes, bytes]], rate: float, sent_ms: dict) -> None:
    """Send at ``rate`` messages/s (0: as fast as possible), noting each send time."""
    from kafka import KafkaProducer

    from s2s.stream.kafka_admin import security_configs

    producer = KafkaProducer(**security_configs(bootstrap, None), bootstrap_servers=bootstrap, acks="all",
                             linger_ms=2, batch_size=256 * 1024)  # security: $S2S_KAFKA_SECURITY, if set
    started = time.monotonic()
    for i, (key, value) in enumerate(keyed):
        if rate:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # open-loop pacing of the offered load
        sent_ms[key] = time.time() * 1000
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=300)
    producer.close()


class AnswerReader:
    """Reads an output topic from its current end on a thread, noting when each key arrived."""

    def __init__(self, bootstrap: str, topic: str):
        from kafka import KafkaConsumer, TopicPartition

        from s2s.stream.kafka_admin import security_configs

        self.received_ms: dict[bytes, float] = {}
        self._consumer = KafkaConsumer(**security_configs(bootstrap, None), bootstrap_servers=bootstrap,
                                       enable_auto_commit=False, fetch_max_wait_ms=10)
        partitions = self._consumer.partitions_for_topic(topic)
        self._consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self._consumer.seek_to_end()
        for tp in self._consumer.assignment():
            self._consumer.position(tp)  # resolve "end" now, before anything is produced

    def collect(self, keys: set[bytes], timeout_s: float) -> dict[bytes, float]:
        deadline = time.monotonic() + timeout_s
        while not keys <= self.received_ms.keys() and time.monotonic() < deadline:
            polled = self._consumer.poll(timeout_ms=100)
            now = time.time() * 1000
            for batch in polled.values():
                for record in batch:
                    self.received_ms.setdefault(record.key, now)
        return self.received_ms

    def close(self) -> None:
        self._consumer.close()


class Pipeline:
    """One deployed streaming app on fresh topics, fed and read by this process."""

    def __init__(self, bootstrap: str, model: str, loader: str, args: argparse.Namespace,
                 precision: str = "fp32"):
        from s2s.stream.kafka_admin import create_topics

        self.bootstrap, self.model, self.loader, self.args = bootstrap, model, loader, args
        self.quantize = route_quantize(precision)
        suffix = uuid.uuid4().hex[:8]
        self.name = f"bench-{suffix}"
        self.topics = {role: f"bench-{role}-{suffix}" for role in ("in", "out", "dlq")}
        create_topics(bootstrap, self.topics.values(), partitions=args.partitions)

    def deploy(self) -> None:
        from ray import serve

        from s2s.stream.app import build_app
        from s2s.stream.config import stream_config_from_dict

        config = stream_config_from_dict({
            "kafka": {"bootstrap": self.bootstrap, "group_id": f"{self.name}-group",
                      "dead_letter_topic": self.topics["dlq"], "create_topics": False,
                      "max_poll_records": self.args.poll_records, "max_in_flight": 8 * self.args.poll_records},
            "ingress": {"num_replicas": self.args.ingress_replicas, "num_cpus": 0.5},
            "routes": [{"name": "bench", "input_topic": self.topics["in"], "output_topic": self.topics["out"],
                        "model": self.model, "loader": self.loader, "device": "cpu",
                        "num_cpus": self.args.decode_threads, "max_batch_size": self.args.batch,
                        "quantize": self.quantize}]})
        serve.run(build_app(config), name=self.name, route_prefix=None)

    def run(self, texts: list[str], rate: float, tag: str, backlog: bool = False) -> dict[str, float]:
        """Offer ``texts`` at ``rate``/s (or, with ``backlog``, all before the app starts)."""
        keyed = [(f"{tag}-{i}".encode(), t.encode()) for i, t in enumerate(texts)]
        reader = AnswerReader(self.bootstrap, self.topics["out"])
        sent_ms: dict[bytes, float] = {}
        # Answers are read (and timed) as they come, also while serve.run waits for the app
        # to be ready: the app starts answering a backlog before that call returns.
        collector = threading.Thread(target=reader.collect, args=({k for k, _ in keyed}, self.args.timeout))
        collector.start()
        if backlog:
            produce(self.bootstrap, self.topics["in"], keyed, 0, sent_ms)
            self.deploy()
        else:
            before = self.translator_totals()
            produce(self.bootstrap, self.topics["in"], keyed, rate, sent_ms)
        collector.join()
        reader.close()
        # A backlog's latency is only its queueing time: not reported.
        timing = Timing(sent_ms, reader.received_ms).summary(with_latency=not backlog)
        return timing if backlog else {**timing, **decoder_use(before, self.translator_totals())}

    def translator_totals(self) -> dict[str, float]:
        """telemetry.DecodeTotals summed over the app's translator replicas, and when."""
        from ray import serve

        from s2s.stream.names import TRANSLATOR_PREFIX
        from s2s.stream.status import replica_stats

        names = [n for n in serve.status().applications[self.name].deployments if n.startswith(TRANSLATOR_PREFIX)]
        snapshots = [stats["totals"] for name in names for stats in replica_stats(self.name, name)]
        return {**{key: sum(s[key] for s in snapshots) for key in DECODE_TOTALS}, "at": time.perf_counter()}

    def delete(self) -> None:
        from ray import serve

        from s2s.stream.kafka_admin import delete_topics

        serve.delete(self.name)
        delete_topics(self.bootstrap, self.topics.values())


def capacity_rounds(bootstrap: str, model: Path, texts: list[str], args: argparse.Namespace,
                    precisions: list[str]) -> list[dict]:
    """Backlog rate against the in-process ceiling, round by round (see the module docstring),
    each round measuring every precision in turns."""
    def ceilings() -> dict[str, float]:
        return {p: in_process_rate(model, texts, args.batch, args.decode_threads, p) for p in precisions}

    before, rounds = ceilings(), []
    for number in range(1, args.rounds + 1):
        backlogs = {p: backlog_rate(bootstrap, model, texts, args, p, number) for p in precisions}
        after = ceilings()
        for p in precisions:
            in_process = (before[p] + after[p]) / 2
            rounds.append({"pipeline": model_pipeline(p), "offered": f"backlog {number}", **backlogs[p],
                           "in_process_msgs_per_s": in_process,
                           "vs_in_process": backlogs[p]["msgs_per_s"] / in_process})
            print(f"round {number} {p}: in-process {before[p]:,.0f} / {after[p]:,.0f} msg/s, pipeline "
                  f"{backlogs[p]['msgs_per_s']:,.0f} msg/s = {rounds[-1]['vs_in_process']:.0%}")
        before = after
    return rounds


def backlog_rate(bootstrap: str, model: Path, texts: list[str], args: argparse.Namespace, precision: str,
                 number: int) -> dict:
    """One backlog drained by a fresh deployment of the model in ``precision``."""
    pipeline = Pipeline(bootstrap, str(model), MODEL_LOADER, args, precision)
    try:
        return pipeline.run(texts, 0, f"model-{precision}-backlog-{number}", backlog=True)
    finally:
        pipeline.delete()


def model_pipeline(precision: str) -> str:
    """The rows' pipeline name: "model" for fp32 (as before --precisions), else "model-int8"."""
    return "model" if precision == "fp32" else f"model-{precision}"


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["vs_in_process"])[len(rounds) // 2]


def bench_pipeline(kind: str, bootstrap: str, model: str, loader: str, texts: list[str], rates: list[float],
                   args: argparse.Namespace, backlog: bool = True, precision: str = "fp32") -> list[dict]:
    """Capacity from a backlog (or, with ``backlog`` False, an untimed warm-up), then latency at
    each offered rate, on one deployment."""
    pipeline = Pipeline(bootstrap, model, loader, args, precision)
    rows = []
    try:
        if backlog:
            capacity = pipeline.run(texts, 0, f"{kind}-backlog", backlog=True)
            rows.append({"pipeline": kind, "offered": "backlog", **capacity})
        else:  # a fresh deployment: its first batches (group join, first decodes) are not timed
            pipeline.deploy()
            pipeline.run(texts[:4 * args.batch], 0, f"{kind}-warm-up")
        for rate in rates:
            count = min(len(texts), max(200, int(rate * args.seconds)))
            result = pipeline.run(texts[:count], rate, f"{kind}-{rate:.0f}")
            rows.append({"pipeline": kind, "offered": round(rate), **result})
    finally:
        pipeline.delete()
    return rows


# -- main -------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="checkpoint directory (default: train the toy reverse model)")
    p.add_argument("--texts", help="one source text per line (default: toy sequences)")
    p.add_argument("--messages", type=int, default=10000, help="backlog size; rated runs use up to this many")
    p.add_argument("--rounds", type=int, default=3, help="paired in-process / backlog rounds for the capacity")
    p.add_argument("--identity-messages", type=int, default=20000, help="backlog size for the identity model")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each rated run")
    p.add_argument("--batch", type=int, default=256, help="translator max_batch_size = in-process batch")
    p.add_argument("--poll-records", type=int, default=256, help="kafka max_poll_records of the ingress")
    p.add_argument("--decode-threads", type=int, default=1, help="CPUs (torch threads) of the translator")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--ingress-replicas", type=int, default=1, help="ingress replicas (consumers of the group)")
    p.add_argument("--identity-rates", default="1000,2000,3000", help="offered messages/s, comma-separated")
    p.add_argument("--model-fractions", default="0.25,0.5,0.8", help="offered load as fractions of the ceiling")
    p.add_argument("--timeout", type=float, default=300.0, help="per run, for the answers to arrive")
    p.add_argument("--pipelines", default="model,identity",
                   help="which to measure: model (capacity rounds, then offered load), identity, or both")
    p.add_argument("--precisions", default="fp32",
                   help="the model's forms, measured in turns: fp32 (as stored) and/or int8 (quantize: int8)")
    args = p.parse_args()
    unknown = set(args.precisions.split(",")) - set(PRECISIONS)
    if unknown:
        p.error(f"--precisions takes {', '.join(PRECISIONS)}, not {', '.join(sorted(unknown))}")
    return args


def run(args: argparse.Namespace, broker: Broker, workdir: Path) -> dict:
    load_before = os.getloadavg()  # other work on the machine skews every number here
    pipelines = set(args.pipelines.split(","))
    results: dict = {"rows": []}
    if "model" in pipelines:
        results.update(bench_model(args, broker, workdir))
    if "identity" in pipelines:
        identity = bench_pipeline("identity", broker.bootstrap, "identity", "s2s.stream.models:load_identity_model",
                                  read_texts(args.texts, args.identity_messages),
                                  [float(r) for r in args.identity_rates.split(",")], args)
        results["rows"] += [{**row, "vs_in_process": None} for row in identity]
    return {**results, "load_average": {"before": load_before, "after": os.getloadavg()},
            "settings": dict(vars(args))}


def bench_model(args: argparse.Namespace, broker: Broker, workdir: Path) -> dict:
    """Capacity rounds against the in-process ceiling, then offered load at fractions of it, for
    each precision."""
    model = Path(args.model) if args.model else train_toy(workdir)
    texts = read_texts(args.texts, args.messages)
    precisions = args.precisions.split(",")
    rounds = capacity_rounds(broker.bootstrap, model, texts, args, precisions)
    results: dict = {"model": str(model), "rows": list(rounds), "precisions": {}}
    for precision in precisions:
        median = median_round([r for r in rounds if r["pipeline"] == model_pipeline(precision)])
        ceiling = median["in_process_msgs_per_s"]
        model_rates = [ceiling * float(f) for f in args.model_fractions.split(",")]
        rated = bench_pipeline(model_pipeline(precision), broker.bootstrap, str(model), MODEL_LOADER, texts,
                               model_rates, args, backlog=False, precision=precision)
        for row in rated:
            row["vs_in_process"] = row["msgs_per_s"] / ceiling
        results["rows"] += rated
        results["precisions"][precision] = {"in_process_msgs_per_s": ceiling,
                                            "capacity_vs_in_process": median["vs_in_process"]}
    if "int8" in precisions and "fp32" in precisions:
        results["int8_vs_fp32_backlog"] = backlog_ratios(rounds, "int8", "fp32")
    return results


def backlog_ratios(rounds: list[dict], precision: str, baseline: str) -> list[float]:
    """Per capacity round, ``precision``'s backlog msg/s over ``baseline``'s in the same round."""
    rates: dict[str, dict[str, float]] = {}
    for row in rounds:
        rates.setdefault(row["offered"], {})[row["pipeline"]] = row["msgs_per_s"]
    return [r[model_pipeline(precision)] / r[model_pipeline(baseline)] for r in rates.values()]


def report(results: dict) -> None:
    rows = results["rows"]
    print_table(["pipeline", "offered msg/s", "messages", "lost", "msg/s", "p50 ms", "p95 ms", "p99 ms",
                 "vs in-process", "mean batch", "decode busy", "decode ms/msg", "translator CPU s/s"],
                [[r["pipeline"], r["offered"], r["messages"], r["lost"], r["msgs_per_s"], _blank(r["p50_ms"]),
                  _blank(r["p95_ms"]), _blank(r["p99_ms"]),
                  "" if r["vs_in_process"] is None else f"{r['vs_in_process']:.0%}",
                  _blank(r.get("mean_batch")), _share(r.get("decode_busy")), _blank(r.get("decode_ms_per_msg")),
                  _blank(r.get("translator_cpu_per_s"))]
                 for r in rows])
    print(f"load average (1, 5, 15 min) before/after: {results['load_average']['before']} / "
          f"{results['load_average']['after']}")
    for precision, figures in results.get("precisions", {}).items():
        print(f"{precision}: in-process ceiling (median round): {figures['in_process_msgs_per_s']:,.0f} messages/s "
              f"({1000 / figures['in_process_msgs_per_s']:.3f} decode ms per message); "
              f"model pipeline capacity, median of {results['settings']['rounds']} rounds: "
              f"{figures['capacity_vs_in_process']:.0%} of in-process (target {MODEL_TARGET:.0%})")
    if "int8_vs_fp32_backlog" in results:
        ratios = results["int8_vs_fp32_backlog"]
        print(f"int8 backlog msg/s over fp32's, round by round: {' / '.join(f'{r:.2f}x' for r in ratios)} "
              f"(median {statistics.median(ratios):.2f}x)")
    for row in rows:
        if row["pipeline"] == "identity" and row["offered"] == "backlog":
            print(f"identity capacity {row['msgs_per_s']:,.0f} msg/s (target {IDENTITY_TARGET:,.0f})")


def _blank(value):
    return "" if value is None else value


def _share(value):
    return "" if value is None else f"{value:.0%}"


def main() -> int:
    args = parse_args()
    broker = Broker()
    workdir = Path(tempfile.mkdtemp(prefix="s2s-bench-"))
    try:
        replicas_at_normal_priority()  # as `s2s serve` runs them
        with private_serve():
            results = run(args, broker, workdir)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    path = write_results("stream_bench", results)
    report(results)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
