"""The s2s row: its experiment YAML (configs/bible-en-fr.yaml with the shared settings) and
what `s2s train` prints.

s2s trains exactly as a user runs it (`s2s train --config C --out D`). The model is its
recipe: Luong general attention without input feeding (the decoder runs over all target
steps at once), tied embeddings (source = target = output layer, through a 512+512 -> 256
combine layer), a bridge, dropout 0.2; training: Adam 0.002 with 200 warm-up steps, plateau
halving on dev BLEU (patience 2), early stopping off (as for the peers), best dev BLEU kept
in OUT/best. The `s2s-feeding` row, off by default, is the same with input feeding, the
peers' decoder design.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from .settings import Settings

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "configs" / "bible-en-fr.yaml"


def config(s: Settings, data_dir: Path, name: str = "peers-s2s", input_feeding: bool = False,
           base: Path = BASE_CONFIG) -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load(base.read_text()))
    raw["name"] = name
    data = raw.setdefault("data", {})
    data.update(train=str(data_dir / "train.parquet"), dev=str(data_dir / "dev.parquet"),
                test=str(data_dir / "test.parquet"), task="translation",
                max_src_len=s.max_len, max_tgt_len=s.max_len)
    tok = data.setdefault("tokenizer", {})
    tok.update(type="bpe", vocab_size=s.vocab_size, shared=True, byte_fallback=False,
               sampling_alpha=0.0)
    raw.setdefault("model", {}).update(
        rnn="lstm", emb_size=s.emb_size, enc_hidden=s.enc_hidden, enc_layers=s.layers,
        dec_hidden=s.dec_hidden, dec_layers=s.layers, attention="luong_general",
        input_feeding=input_feeding, dropout=s.dropout, tied_embeddings=True,
        copy_attention=False, coverage=False)
    raw.setdefault("training", {}).update(
        seed=s.seed, epochs=s.epochs, max_minutes=s.minutes, batch_tokens=s.batch_tokens,
        lr=s.lr, warmup_steps=s.lr_warmup_steps, lr_schedule="plateau", min_lr=s.min_lr,
        plateau_patience=s.plateau_patience, plateau_factor=s.plateau_factor, clip_norm=s.clip_norm,
        label_smoothing=s.label_smoothing, eval_every=s.eval_every, log_every=s.log_every,
        early_stopping=0, dev_sentences=s.dev_sentences, threads=s.threads, device="cpu",
        average_last=0)
    raw.setdefault("testing", {}).update(
        beam=s.beam, n_best=1, length_penalty=s.length_penalty, max_len_ratio=s.max_len_ratio,
        batch_size=s.decode_batch)
    return raw


_SUMMARY = re.compile(r"best dev score (-?[\d.]+|-?inf) after (\d+) steps; (\d+) target tokens/s")


def parse_train_output(text: str) -> dict[str, Any]:
    """`s2s train`'s closing line: best dev score, steps, target tokens/s."""
    found = _SUMMARY.findall(text)
    if not found:
        return {}
    best, steps, rate = found[-1]
    return {"best_dev": float(best), "steps": int(steps), "tokens_per_s": float(rate)}
