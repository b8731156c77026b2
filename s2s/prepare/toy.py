"""Synthetic corpora for tests and smoke runs: copy or reverse random digit strings.

Tokens are space-separated so a word-level vocabulary learns them exactly; the
answer is a pure function of the input, which makes exact-match a fair metric.
"""
from __future__ import annotations

import random
from pathlib import Path

from ..corpus import pairs_table, write_splits
from .registry import CorpusBuilder

TRANSFORMS = ("reverse", "copy")   # what the target does to the source tokens
TOKENS = [str(i) for i in range(10)] + list("abcdefghij")


def toy_pairs(n: int, transform: str, seed: int, min_len: int = 3, max_len: int = 10,
              vocab: int = len(TOKENS)) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        seq = [rng.choice(TOKENS[:vocab]) for _ in range(rng.randint(min_len, max_len))]
        out = seq[::-1] if transform == "reverse" else seq
        pairs.append((" ".join(seq), " ".join(out)))
    return pairs


def prepare_toy(out_dir: str | Path, transform: str = "reverse", train: int = 5000,
                dev: int = 200, test: int = 200, seed: int = 1, **kwargs) -> dict:
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown toy transform {transform!r} (one of {', '.join(TRANSFORMS)})")
    splits = {name: pairs_table(toy_pairs(n, transform, seed + i, **kwargs))
              for i, (name, n) in enumerate([("train", train), ("dev", dev), ("test", test)])}
    meta = {"source": "toy", "task": "translation", "transform": transform, "seed": seed}
    write_splits(out_dir, splits, meta)
    return {**meta, "counts": {name: table.num_rows for name, table in splits.items()}}


def _add_arguments(parser) -> None:
    parser.add_argument("--transform", default="reverse", choices=TRANSFORMS)
    parser.add_argument("--train", type=int, default=5000, help="training pairs")


BUILDER = CorpusBuilder("toy", "synthetic copy/reverse sequences",
                        lambda args: prepare_toy(args.out, args.transform, train=args.train),
                        _add_arguments)
