"""Split a user's own corpus (TSV / JSONL / Parquet with src, tgt) into train/dev/test."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..corpus import CorpusError, read_corpus, write_splits
from .registry import CorpusBuilder


def prepare_user_corpus(path: str | Path, out_dir: str | Path, dev: int = 500, test: int = 500,
                        seed: int = 1) -> dict:
    table = read_corpus(path)
    if table.num_rows <= dev + test:
        raise CorpusError(f"{path}: {table.num_rows} rows cannot hold out {dev} dev + "
                          f"{test} test rows and still leave training data")
    order = np.random.default_rng(seed).permutation(table.num_rows)
    splits = {"dev": table.take(order[:dev]), "test": table.take(order[dev:dev + test]),
              "train": table.take(order[dev + test:])}
    meta = {"source": str(path), "seed": seed}
    write_splits(out_dir, splits, meta)
    return {**meta, "counts": {k: v.num_rows for k, v in splits.items()}}


def _add_arguments(parser) -> None:
    parser.add_argument("file")
    parser.add_argument("--dev", type=int, default=500, help="dev rows held out")
    parser.add_argument("--test", type=int, default=500, help="test rows held out")


BUILDER = CorpusBuilder("corpus", "split a user TSV/JSONL/Parquet corpus",
                        lambda args: prepare_user_corpus(args.file, args.out, args.dev, args.test),
                        _add_arguments)
