"""Decoding speed: batched beam search (beam 5, batch 64) vs a batch-size-1 loop, and int8 vs fp32.

    .venv/bin/python bench/decode_speed.py --model runs/bible-en-fr/best [--sentences 256]
    .venv/bin/python bench/decode_speed.py --data data/bible-en-fr/test.parquet --bleu-sentences 0

All rows decode the same sentences with the same beam through the same Translator, which sorts
the input by length and decodes it in batches of 64 or of 1. The int8 row is the same
checkpoint quantized on load (what `s2s quantize` stores and a route's `quantize: int8`
builds); fp32 and int8 batched runs alternate for `--rounds` rounds and the median counts, so
load from other processes falls on both alike. BLEU of fp32 and of int8 is measured on the
first `--bleu-sentences` pairs of --data (0: all of them; default: the timed sentences).
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
from s2s.scoring import bleu  # noqa: E402
from s2s.prediction import Translator  # noqa: E402
from s2s.training import set_threads  # noqa: E402


def timed(translator: Translator, texts: list[str], batch_size: int, beam: int):
    """All texts through the Translator as `s2s translate` does: it sorts them by length and
    decodes `batch_size` at a time (batch size 1: one sentence after another)."""
    translator.testing = translator.testing.replace(batch_size=batch_size)
    started = time.perf_counter()
    outputs = translator.best(texts, beam=beam)
    return outputs, time.perf_counter() - started


def alternating(translators: dict[str, Translator], texts, batch, beam, rounds):
    """Batched runs of each translator in turns: its outputs and the seconds of each round."""
    outputs, seconds = {}, {name: [] for name in translators}
    for _ in range(rounds):
        for name, translator in translators.items():
            outputs[name], elapsed = timed(translator, texts, batch, beam)
            seconds[name].append(elapsed)
    return outputs, seconds


def bleu_scores(translators: dict[str, Translator], sources, refs, batch, beam) -> dict[str, float]:
    return {name: bleu(timed(t, sources, batch, beam)[0], refs) for name, t in translators.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="runs/bible-en-fr/best", help="an fp32 checkpoint")
    parser.add_argument("--data", default="data/bible-en-fr/dev.parquet")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating fp32/int8 rounds")
    parser.add_argument("--bleu-sentences", type=int, help="pairs of --data scored (0: all)")
    args = parser.parse_args()
    set_threads(args.threads)
    translators = {"fp32": Translator.from_checkpoint(args.model, device="cpu"),
                   "int8": Translator.from_checkpoint(args.model, device="cpu", quantize="int8")}
    table = read_corpus(args.data)
    texts = table.column("src").to_pylist()[: args.sentences]
    for translator in translators.values():
        timed(translator, texts[:8], args.batch, args.beam)                     # warm-up
    outputs, all_s = alternating(translators, texts, args.batch, args.beam, args.rounds)
    single, single_s = timed(translators["fp32"], texts, 1, args.beam)
    same = sum(a == b for a, b in zip(outputs["fp32"], single)) / len(texts)
    int8_same = sum(a == b for a, b in zip(outputs["fp32"], outputs["int8"])) / len(texts)
    n_bleu = args.sentences if args.bleu_sentences is None else args.bleu_sentences or len(table)
    scored = table.slice(0, n_bleu)
    refs = scored.column("tgt").to_pylist()
    if n_bleu == len(texts):                     # the timed sentences: their outputs are scored
        bleus = {name: bleu(out, refs) for name, out in outputs.items()}
    else:
        bleus = bleu_scores(translators, scored.column("src").to_pylist(), refs, args.batch,
                            args.beam)
    report(args, len(texts), all_s, single_s, same, int8_same, len(scored), bleus)


def report(args, n, all_s, single_s, same, int8_same, n_bleu, bleus) -> None:
    median_s = {name: statistics.median(s) for name, s in all_s.items()}
    rows = [[f"fp32, beam {args.beam}, batch {args.batch}", n / median_s["fp32"], bleus["fp32"]],
            [f"int8, beam {args.beam}, batch {args.batch}", n / median_s["int8"], bleus["int8"]],
            [f"fp32, beam {args.beam}, batch 1", n / single_s, ""]]
    print_table(["decoder", "sentences/s", f"BLEU ({n_bleu} sentences)"], rows)
    print(f"batching speed-up {single_s / median_s['fp32']:.1f}x; identical outputs {same:.1%}")
    print(f"int8 speed-up {median_s['fp32'] / median_s['int8']:.2f}x; BLEU int8 - fp32 "
          f"{bleus['int8'] - bleus['fp32']:+.2f}; outputs identical to fp32 {int8_same:.1%}")
    write_results("decode_speed", {
        "args": vars(args), "batched_s": median_s["fp32"], "single_s": single_s,
        "speedup": single_s / median_s["fp32"], "identical": same, "sentences": n,
        "int8": {"batched_s": median_s["int8"], "speedup": median_s["fp32"] / median_s["int8"],
                 "rounds_s": all_s, "identical_to_fp32": int8_same, "bleu_sentences": n_bleu,
                 "bleu": bleus, "bleu_diff": bleus["int8"] - bleus["fp32"]}})

if __name__ == "__main__":
    main()
