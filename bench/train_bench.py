"""Training throughput through Ray Train vs the plain single-process loop.

    .venv/bin/python bench/train_bench.py
    .venv/bin/python bench/train_bench.py --config configs/bible-en-fr.yaml --train-rows 3000 --epochs 1

Three setups, side by side in one run, on the same model, data and batch size
(training.batch_tokens per process) with one torch thread per process:

    plain        the core loop: `encode_corpus` batches + `train_step`, no Ray
    ray-1        Ray Train, 1 worker (local 2-node cluster, 1 CPU per node)
    ray-2        Ray Train, 2 workers on the 2 nodes (DDP over gloo, loopback)

Tokens/s counts target tokens over the time spent collating batches and in the training
step (dev evaluation and start-up excluded), summed over workers for ray-2. Each setup
runs --rounds times, interleaved, and the best round counts (other work on a shared
machine only ever slows a round down); every round is kept in the JSON. Ratios:
ray-1 / plain (overhead of the Ray path; target >= 0.9) and ray-2 / ray-1 (scaling).
Writes bench/results/train_bench.json and prints a table. The toy task is generated
on the fly; --config uses that experiment's data instead.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2s.config import ExperimentConfig  # noqa: E402
from s2s.corpus import read_corpus  # noqa: E402
from s2s.model import build_model  # noqa: E402
from s2s.prepare.toy import prepare_toy  # noqa: E402
from s2s.train.config import RayTrainConfig, load_ray_config  # noqa: E402
from s2s.training import (LRSchedule, encode_corpus, seed_everything, set_threads,  # noqa: E402
                          train_step)
from s2s.vocabulary import learn_vocabularies  # noqa: E402

RESULTS = REPO / "bench" / "results" / "train_bench.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "toy-reverse.yaml"))
    p.add_argument("--toy-rows", type=int, default=5000,
                   help="toy training pairs generated when --config is the toy config")
    p.add_argument("--train-rows", type=int, default=0, help="use only the first N pairs")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions per setup")
    return p.parse_args()


def bench_config(args: argparse.Namespace, work: Path) -> ExperimentConfig:
    """The experiment with its data in `work`, one thread, and no mid-epoch evaluation."""
    cfg, _ = load_ray_config(args.config)
    train, dev = cfg.data.train, cfg.data.dev
    if Path(args.config).name == "toy-reverse.yaml":
        prepare_toy(work / "toy", "reverse", train=args.toy_rows, dev=50, test=10)
        train, dev = str(work / "toy" / "train.parquet"), str(work / "toy" / "dev.parquet")
    if args.train_rows:
        pq.write_table(read_corpus(train).slice(0, args.train_rows), work / "train.parquet")
        train = str(work / "train.parquet")
    data = cfg.data.replace(train=str(Path(train).resolve()), dev=str(Path(dev).resolve()) if dev else "")
    training = cfg.training.replace(epochs=args.epochs, threads=1, max_minutes=0.0, eval_every=10**9,
                                    early_stopping=0, dev_sentences=20, device="cpu")
    return cfg.replace(data=data, training=training)


def plain_loop(cfg: ExperimentConfig) -> dict[str, Any]:
    """The single-process reference: the same steps the Ray worker takes, without Ray."""
    t, d = cfg.training, cfg.data
    set_threads(t.threads)
    seed_everything(t.seed)
    table = read_corpus(d.train)
    src_vocab, tgt_vocab = learn_vocabularies(table.column("src").to_pylist(),
                                              table.column("tgt").to_pylist(), d.tokenizer, t.seed)
    corpus = encode_corpus(table, src_vocab, tgt_vocab, d.max_src_len, d.max_tgt_len)
    model = build_model(cfg.model, len(src_vocab), len(tgt_vocab), src_vocab is tgt_vocab, t.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    schedule = LRSchedule(optimizer, t)
    tokens, seconds, steps, started = 0, 0.0, 0, time.perf_counter()
    for epoch in range(t.epochs):
        for indices in corpus.batches(t.batch_tokens, t.seed, epoch):
            step_started = time.perf_counter()
            batch = corpus.collate(indices)
            train_step(model, batch, optimizer, schedule, t)
            seconds += time.perf_counter() - step_started
            tokens, steps = tokens + batch.ntokens, steps + 1
    return {"tokens": tokens, "seconds": seconds, "steps": steps,
            "wall_s": time.perf_counter() - started}


def ray_run(cfg: ExperimentConfig, workers: int, work: Path, round_: int) -> dict[str, Any]:
    from s2s.train.launcher import train_on_ray
    from s2s.train.progress import read_records

    ray_cfg = RayTrainConfig(workers=workers, cpus_per_worker=1, use_gpu=False,
                             placement_strategy="STRICT_SPREAD" if workers > 1 else "PACK",
                             num_to_keep=1, max_failures=0,
                             run_name=f"bench-{workers}-{round_}", storage_path=str(work / "ray"))
    out = work / f"ray-{workers}-{round_}"
    started = time.perf_counter()
    summary = train_on_ray(cfg, ray_cfg, out)
    records = read_records(out / "progress.jsonl")
    return {"tokens": sum(r["window_tokens"] for r in records),
            "seconds": sum(r["window_seconds"] for r in records),
            "steps": summary["steps"], "wall_s": time.perf_counter() - started,
            "per_worker_tokens_per_s": [sum(r["tokens_per_s_workers"][i] for r in records)
                                        / len(records) for i in range(workers)]}


def start_cluster() -> Any:
    """Two raylets on this machine, one CPU each: the '2 local nodes'."""
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 200 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes(timeout=120)
    assert len(ray.nodes()) == 2
    return cluster


def best_rounds(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per setup, the fastest round, with every round's tokens/s alongside."""
    best = {}
    for name, runs in rounds.items():
        for r in runs:
            r["tokens_per_s"] = r["tokens"] / max(r["seconds"], 1e-9)
        best[name] = {**max(runs, key=lambda r: r["tokens_per_s"]),
                      "rounds_tokens_per_s": [r["tokens_per_s"] for r in runs]}
    return best


def report(rounds: dict[str, list[dict[str, Any]]], cfg: ExperimentConfig) -> dict[str, Any]:
    results = best_rounds(rounds)
    ratios = {"ray1_vs_plain": results["ray-1"]["tokens_per_s"] / results["plain"]["tokens_per_s"],
              "ray2_vs_ray1": results["ray-2"]["tokens_per_s"] / results["ray-1"]["tokens_per_s"]}
    print(f"\n{'setup':8} {'steps':>6} {'tokens':>9} {'train s':>8} {'tok/s':>8} {'wall s':>7}  "
          f"tok/s per round")
    for name, r in results.items():
        per_round = ", ".join(f"{v:.0f}" for v in r["rounds_tokens_per_s"])
        print(f"{name:8} {r['steps']:>6} {r['tokens']:>9} {r['seconds']:>8.1f} "
              f"{r['tokens_per_s']:>8.0f} {r['wall_s']:>7.1f}  {per_round}")
    print(f"\nray-1 / plain = {ratios['ray1_vs_plain']:.3f}  (target >= 0.9)")
    print(f"ray-2 / ray-1 = {ratios['ray2_vs_ray1']:.3f}  (2 workers on 2 local nodes)")
    return {"config": cfg.name, "batch_tokens": cfg.training.batch_tokens,
            "epochs": cfg.training.epochs, "threads_per_process": cfg.training.threads,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "results": results, "rounds": rounds, "ratios": ratios,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="s2s-train-bench-") as tmp:
        work = Path(tmp)
        cfg = bench_config(args, work)
        rounds: dict[str, list[dict[str, Any]]] = {"plain": [], "ray-1": [], "ray-2": []}
        cluster = start_cluster()
        try:
            for round_ in range(args.rounds):
                rounds["plain"].append(plain_loop(cfg))
                rounds["ray-1"].append(ray_run(cfg, 1, work, round_))
                rounds["ray-2"].append(ray_run(cfg, 2, work, round_))
        finally:
            import ray
            ray.shutdown()
            cluster.shutdown()
    summary = report(rounds, cfg)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
