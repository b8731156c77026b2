"""s2s's timed decode, the same shape as the peers' runners; run by .venv's Python.

    python s2s_runner.py decode --model DIR --input SRC --output HYP --warmup N
                                --threads T --result R.json

What `s2s translate --model DIR --input SRC` does (Translator.from_checkpoint, then best()
on all lines: it sorts them by length and decodes testing.batch_size at a time with
testing.beam), with model loading off the clock and N lines decoded first, untimed. The
input is raw text (s2s segments it itself, with the same SentencePiece model the peers'
files were made with) and the output is detokenized text.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from budget import set_threads, timed, write_decode_result

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def decode(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    from s2s.prediction import Translator

    translator = Translator.from_checkpoint(args.model, device="cpu")
    lines = Path(args.input).read_text(encoding="utf-8").rstrip("\n").split("\n")
    if args.warmup:
        translator.best(lines[: args.warmup])
    hyps, seconds = timed(translator.best, lines)
    assert len(hyps) == len(lines), (len(hyps), len(lines))
    Path(args.output).write_text("".join(h.replace("\n", " ") + "\n" for h in hyps),
                                 encoding="utf-8")
    write_decode_result(args.result, len(lines), seconds, beam=translator.testing.beam,
                        batch_size=translator.testing.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["decode"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args()
    started = time.time()
    decode(args)
    print(f"{args.mode} done in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
