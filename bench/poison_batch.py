"""What one text the model cannot decode costs its batch: a clean batch, the same batch with one
failing text found by bisection (what the translator does), and found by redoing every text
alone (what it did before), alternating for --rounds rounds; the median counts.

    .venv/bin/python bench/poison_batch.py --model runs/demo-en-fr/best [--texts 200 --rounds 5]

The failing text raises inside ``model.best`` (as a model bug or a CUDA error would) whenever a
batch holds it. Texts are the first --texts sources of --data, else numbered toy sentences.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import print_table, write_results  # noqa: E402
from s2s.corpus import read_corpus  # noqa: E402
from s2s.stream.models import DecodeItem, decode_items, load_checkpoint_model  # noqa: E402
from s2s.training import set_threads  # noqa: E402

POISON = "\u2620 poison"


class FailsOnPoison:
    """The checkpoint's model, raising on any batch that holds POISON; counts its calls."""

    def __init__(self, model):
        self._model, self.name, self.version, self.calls = model, model.name, model.version, 0

    def best(self, texts, beam=None, max_len=None):
        self.calls += 1
        if POISON in texts:
            raise ValueError("cannot decode the poison")
        return self._model.best(texts, beam=beam, max_len=max_len)


def one_by_one(model, items):
    """The old isolation: the batch, then every text again alone."""
    try:
        return model.best([item.text for item in items])
    except ValueError:
        return [decode_items(model, [item]) for item in items]


STRATEGIES = {"clean batch": lambda m, items: decode_items(m, items[:-1]),
              "poisoned, bisected": decode_items,
              "poisoned, one by one": one_by_one}


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    model = FailsOnPoison(load_checkpoint_model(args.model, "cpu"))
    texts = (read_corpus(args.data).column("src").to_pylist()[:args.texts] if args.data
             else [f"{i} {i + 1} {i + 2}" for i in range(args.texts)])
    middle = len(texts) // 2
    items = [DecodeItem(t) for t in texts[:middle] + [POISON] + texts[middle:]]
    items.append(items.pop(middle))  # poison last, so "clean batch" is the same texts less it
    decode_items(model, items[:-1])  # warm-up, untimed
    seconds, calls = {name: [] for name in STRATEGIES}, {}
    for _ in range(args.rounds):
        for name, strategy in STRATEGIES.items():
            model.calls, started = 0, time.perf_counter()
            strategy(model, items)
            seconds[name].append(time.perf_counter() - started)
            calls[name] = model.calls
    clean = statistics.median(seconds["clean batch"])
    rows = [[name, statistics.median(s), statistics.median(s) / clean, calls[name]] for name, s in seconds.items()]
    print_table(["batch", "median s", "x clean", "model calls"], rows)
    print(f"written to {write_results('poison_batch', {'texts': len(texts), 'rounds': args.rounds, 'rows': rows})}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--data", help="a parquet split whose sources are decoded")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
