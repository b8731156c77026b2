"""What each core `s2s` subcommand does; cli.py only parses arguments."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from .checkpoint import CheckpointError
from .config import ConfigError, load_config
from .corpus import CorpusError, read_corpus

log = logging.getLogger("s2s")

# Errors that are the user's to fix: printed as one clear line, exit code 2.
USER_ERRORS = (ConfigError, CorpusError, CheckpointError, FileNotFoundError, ValueError)


def prepare(args: argparse.Namespace) -> int:
    meta = args.builder.build(args)
    print(json.dumps(meta.get("counts", meta), ensure_ascii=False))
    return 0


def train(args: argparse.Namespace) -> int:
    from .trainer import Trainer
    cfg = load_config(args.config)
    out = args.out or f"runs/{cfg.name}"
    summary = Trainer(cfg, out).run()
    print(f"best dev score {summary['best_score']:.2f} after {summary['steps']} steps; "
          f"{summary['tokens_per_s']:.0f} target tokens/s; model: {summary['best']}")
    if "averaged" in summary:
        averaged = summary["averaged"]
        scores = " ".join(f"{k} {v:.2f}" for k, v in averaged["metrics"].items())
        print(f"average of the checkpoints of steps {averaged['steps']}: dev {scores}; "
              f"model: {averaged['path']}")
    return 0


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None for bytes that are not UTF-8."""
    for number, raw in enumerate(stream, start=1):
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            log.warning("line %d is not valid UTF-8 (%s); output left empty", number, err.reason)
            yield number, None


def _open_input(path: str | None) -> BinaryIO:
    if path is None:
        return sys.stdin.buffer
    if not Path(path).exists():        # exists(): pipes such as <(cmd) are fine too
        raise FileNotFoundError(f"input file not found: {path}")
    return open(path, "rb")


def _translator(args: argparse.Namespace):
    from .prediction import Translator
    return Translator.from_checkpoint(args.model, args.device)


# A decode batch holds batch x beam hypotheses, each scored over the whole vocabulary: far wider
# beams exhaust memory (beam 10,000 x batch 64 x 8k subwords = 20 GB of logits) and gain nothing.
MAX_BEAM = 100


def _check_search_args(args: argparse.Namespace) -> None:
    """Refuse impossible search options before a model is loaded."""
    if args.beam is not None and not 1 <= args.beam <= MAX_BEAM:
        raise ValueError(f"--beam must be between 1 and {MAX_BEAM}, got {args.beam}")
    if args.max_len is not None and args.max_len < 1:
        raise ValueError(f"--max-len must be at least 1, got {args.max_len}")


def _search_kwargs(args: argparse.Namespace) -> dict:
    return {"beam": args.beam, "max_len": args.max_len, "alpha": args.length_penalty}


def translate(args: argparse.Namespace, chunk: int = 512) -> int:
    _check_search_args(args)
    translator = _translator(args)
    if args.n_best > (args.beam or translator.testing.beam):
        raise ValueError(f"--n-best {args.n_best} needs a beam at least as large")
    with _open_input(args.input) as stream:
        pending: list[tuple[int, str | None]] = []
        for item in read_lines(stream):
            pending.append(item)
            if len(pending) >= chunk:
                _translate_chunk(translator, pending, args)
                pending = []
        if pending:
            _translate_chunk(translator, pending, args)
    return 0


def _translate_chunk(translator, lines: list[tuple[int, str | None]], args) -> None:
    texts = [text or "" for _, text in lines]
    for number, text in lines:
        if text is not None and not text.strip():
            log.warning("line %d is empty; output left empty", number)
    results = translator.translate([t.strip() for t in texts], n_best=args.n_best,
                                   **_search_kwargs(args))
    out = sys.stdout
    for (number, _), hyps in zip(lines, results, strict=True):
        if args.n_best == 1:
            out.write(hyps[0].text + "\n")
        else:
            for hyp in hyps:
                out.write(f"{number - 1} ||| {hyp.text} ||| {hyp.score:.4f}\n")
    out.flush()


def evaluate(args: argparse.Namespace) -> int:
    from .scoring import task_scores
    _check_search_args(args)
    translator = _translator(args)
    table = read_corpus(args.test)
    if args.limit:
        table = table.slice(0, args.limit)
    src, refs = table.column("src").to_pylist(), table.column("tgt").to_pylist()
    hyps = translator.best(src, **_search_kwargs(args))
    task = load_task(args.model)
    scores = task_scores(task, hyps, refs)
    scores["exact_match"] = 100.0 * sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    scores["sentences"] = len(refs)
    if args.json:
        print(json.dumps(scores))
    else:
        print("  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in scores.items()))
    return 0


def load_task(model_dir: str) -> str:
    from .checkpoint import read_manifest
    from .tasks import canonical_task
    return canonical_task(read_manifest(model_dir).get("task", "translation"))


def quantize(args: argparse.Namespace) -> int:
    from .checkpoint import quantize_checkpoint
    out = quantize_checkpoint(args.model, args.out)
    print(f"int8 model written to {out}; s2s translate/evaluate and s2s serve read it as they "
          "read any checkpoint (it decodes on CPU)")
    return 0


def attention(args: argparse.Namespace) -> int:
    from .plotting import plot_attention
    translator = _translator(args)
    hyp = translator.translate([args.text], beam=1, keep_attention=True)[0][0]
    src_ids = translator.encode_sources([args.text])[0]
    src_tokens = translator.src_vocab.pieces(src_ids) + ["</s>"]
    tgt_tokens = translator.tgt_vocab.pieces(hyp.tokens) + ["</s>"]
    plot_attention(hyp.attention, src_tokens, tgt_tokens, args.out, hyp.copy or None)
    copy = " and copy probability" if hyp.copy else ""
    print(f"{hyp.text}\nattention ({len(tgt_tokens)} x {len(src_tokens)}){copy} written to {args.out}")
    return 0


def average(args: argparse.Namespace) -> int:
    from .averaging import average_checkpoints
    out = average_checkpoints(args.models, args.out)
    print(f"average of {len(args.models)} checkpoints written to {out}")
    return 0
