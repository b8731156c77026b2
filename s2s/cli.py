"""`s2s` command line: data preparation, training, translation, evaluation, pictures.

    s2s data prepare bible --src en --tgt fr --out data/bible-en-fr
    s2s train --config configs/bible-en-fr.yaml --out runs/bible-en-fr
    echo "In the beginning God created the heavens." | s2s translate --model runs/bible-en-fr/best
    s2s quantize --model runs/bible-en-fr/best --out runs/bible-en-fr/int8
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import Sequence

from . import commands
from .prepare.registry import corpus_builders

log = logging.getLogger("s2s")


def _data_parser(sub) -> None:
    data = sub.add_parser("data", help="prepare corpora").add_subparsers(dest="data_cmd", required=True)
    prep = data.add_parser("prepare", help="build Parquet train/dev/test splits")
    kinds = prep.add_subparsers(dest="corpus", required=True)
    for builder in corpus_builders():                  # one per module of s2s/prepare/
        parser = kinds.add_parser(builder.name, help=builder.help)
        builder.add_arguments(parser)
        parser.add_argument("--out", required=True, help="output directory")
        if builder.downloads:
            parser.add_argument("--cache", default="data/cache", help="download cache")
        parser.set_defaults(func=commands.prepare, builder=builder)


def _model_parsers(sub) -> None:
    train = sub.add_parser("train", help="train a model from a YAML config")
    train.add_argument("--config", required=True)
    train.add_argument("--out", help="run directory (default runs/<name>)")
    train.set_defaults(func=commands.train)

    tr = sub.add_parser("translate", help="decode lines from stdin or --input")
    tr.add_argument("--model", required=True, help="checkpoint directory")
    tr.add_argument("--input", help="text file, one source per line (default stdin)")
    _search_args(tr)
    tr.add_argument("--n-best", type=int, default=1,
                    help="print K hypotheses per line as 'line ||| text ||| score'")
    tr.set_defaults(func=commands.translate)

    ev = sub.add_parser("evaluate", help="score a model on a test corpus")
    ev.add_argument("--model", required=True)
    ev.add_argument("--test", required=True, help="corpus file with src/tgt")
    ev.add_argument("--limit", type=int, default=0, help="score only the first N pairs")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    _search_args(ev)
    ev.set_defaults(func=commands.evaluate)

    att = sub.add_parser("attention", help="draw the attention matrix for one sentence")
    att.add_argument("--model", required=True)
    att.add_argument("--text", required=True)
    att.add_argument("--out", required=True, help="PNG file")
    att.add_argument("--device", default="auto")
    att.set_defaults(func=commands.attention)

    avg = sub.add_parser("average", help="average the weights of checkpoints of one run")
    avg.add_argument("--models", nargs="+", required=True, help="checkpoint directories")
    avg.add_argument("--out", required=True, help="new checkpoint directory")
    avg.set_defaults(func=commands.average)

    quant = sub.add_parser("quantize", help="write the int8 (CPU) form of a checkpoint")
    quant.add_argument("--model", required=True, help="fp32 checkpoint directory")
    quant.add_argument("--out", required=True, help="new checkpoint directory (manifest says int8)")
    quant.set_defaults(func=commands.quantize)


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, help="beam size (default: the model's testing.beam)")
    p.add_argument("--max-len", type=int, help="cap on output tokens")
    p.add_argument("--length-penalty", type=float, help="GNMT alpha")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _data_parser(sub)
    _model_parsers(sub)
    for module in ADAPTER_PARSERS:
        importlib.import_module(module).register(sub)
    return parser


# The Ray and Kafka adapters add their own subcommands (`serve`, `produce`,
# `cluster`, `train --ray` ...). These modules only build parsers: they import
# ray/kafka inside the handlers, so `s2s translate` never pays for them.
ADAPTER_PARSERS = [m for m in ("s2s.train.cli_parsers", "s2s.stream.cli_parsers", "s2s.cluster.cli_parsers")
                   if importlib.util.find_spec(m) is not None]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="s2s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except commands.USER_ERRORS as err:
        print(f"s2s: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
