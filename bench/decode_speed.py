"""Decoding speed: batched beam search (beam 5, batch 64) vs a batch-size-1 loop.

    .venv/bin/python bench/decode_speed.py --model runs/bible-en-fr/best [--sentences 256]

Both decode the same dev sentences with the same model and beam through the same
Translator, which sorts the input by length and decodes it in batches of 64 or of 1.
Outputs are compared too.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import print_table, write_results  # noqa: E402
from s2s.corpus import read_corpus  # noqa: E402
from s2s.prediction import Translator  # noqa: E402
from s2s.training import set_threads  # noqa: E402


def timed(translator: Translator, texts: list[str], batch_size: int, beam: int):
    """All texts through the Translator as `s2s translate` does: it sorts them by length and
    decodes `batch_size` at a time (batch size 1: one sentence after another)."""
    translator.testing = dataclasses.replace(translator.testing, batch_size=batch_size)
    started = time.perf_counter()
    outputs = translator.best(texts, beam=beam)
    return outputs, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="runs/bible-en-fr/best")
    parser.add_argument("--data", default="data/bible-en-fr/dev.parquet")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    translator = Translator.from_checkpoint(args.model, device="cpu")
    texts = read_corpus(args.data).column("src").to_pylist()[: args.sentences]
    timed(translator, texts[:8], args.batch, args.beam)                 # warm-up
    batched, batched_s = timed(translator, texts, args.batch, args.beam)
    single, single_s = timed(translator, texts, 1, args.beam)
    same = sum(a == b for a, b in zip(batched, single)) / len(texts)
    rows = [[f"beam {args.beam}, batch {args.batch}", len(texts) / batched_s],
            [f"beam {args.beam}, batch 1", len(texts) / single_s]]
    print_table(["decoder", "sentences/s"], rows)
    print(f"speed-up {single_s / batched_s:.1f}x; identical outputs {same:.1%}")
    write_results("decode_speed", {"args": vars(args), "batched_s": batched_s,
                                   "single_s": single_s, "speedup": single_s / batched_s,
                                   "identical": same, "sentences": len(texts)})


if __name__ == "__main__":
    main()
