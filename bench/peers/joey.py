"""Joey NMT 2.3: how it is installed, its config for the side-by-side run, its log.

Install: `pip install joeynmt==2.3.0` into .peers/joeynmt-venv, which sees s2s's torch (see
install.py); pip then adds Joey's other dependencies (protobuf 3.20, tensorboard, datasets,
...) to that virtualenv only. One fix, applied at install time:

- torch removed ReduceLROnPlateau's `verbose` argument (deprecated in 2.2, gone since);
  Joey 2.3's builders.py passes `"verbose": False` whenever `scheduling: plateau` is set
  (the schedule s2s's recipe uses) and fails with a TypeError. The patch comments that one
  line out; `False` was the default, so nothing else changes.

sentencepiece: the issue notes Joey 2.3 needing sentencepiece 0.2.0. Here Joey reads
pre-tokenized pieces (`level: word`; the shared model segments everything, data.py), so
its SentencePiece tokenizer is never built; it still imports the module, and s2s's
sentencepiece 0.2.3 imports fine with Joey's protobuf 3.20 (the install checks that import),
so no pin is needed.

The model: Joey's RNN (`type: recurrent`): bi-LSTM encoder 256 per direction, LSTM decoder
512 with Luong attention (Joey's "luong" is the general, bilinear score), input feeding
(Joey's default and its only RNN design that feeds the attention vector back), a bridge
(`init_hidden: bridge`), embeddings 256, shared source/target vocabulary with tied
source/target embeddings (`tied_embeddings`). Joey cannot tie the output layer: its RNN
output layer reads the 512-wide attention vector, and `tied_softmax` needs that width to be
the embedding size (256), so the output layer is a separate 512 x 8,000 matrix. Training:
Adam 0.002, token batches (max(src, tgt) + 1 times sentences >= batch size), loss
normalized by tokens, clip 1.0, label smoothing 0.1, plateau halving on dev BLEU (patience
2), greedy dev checks every `eval_every` steps on the dev verses; best.ckpt is the best dev
BLEU, as s2s's OUT/best. Decoding: beam 5, batch 64 sentences, GNMT alpha 1.0, outputs
up to 1.5x the longest source of the batch (Joey's default for max_output_length -1).
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from .install import Patch, PeerSpec
from .settings import Settings

SPEC = PeerSpec(
    name="joeynmt",
    requirement="joeynmt==2.3.0",
    pins=(("importlib-metadata==10.2.0", "joeynmt/helpers.py imports importlib_metadata, which Joey "
           "2.3 does not declare (older dependency sets brought it along)"),),
    patches=(Patch(
        path="joeynmt/builders.py",
        old='            "verbose": False,\n',
        new='            # "verbose": False,  # s2s bench/peers: torch no longer has this argument\n',
        why="torch's ReduceLROnPlateau has no `verbose` argument any more (TypeError)"),),
    check="import joeynmt.training, joeynmt.prediction, sentencepiece",
)


SPECIALS = {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
            "bos_token": "<s>", "bos_id": 2, "eos_token": "</s>", "eos_id": 3}


def config(s: Settings, data_dir: Path, model_dir: Path, langs: tuple[str, str],
           vocab_file: Path) -> dict[str, Any]:
    """The Joey NMT YAML (as a dict) for training and decoding."""
    side = {"level": "word", "lowercase": False, "normalize": False,
            "max_length": s.max_len, "min_length": 1, "voc_file": str(vocab_file)}
    embeddings = {"embedding_dim": s.emb_size, "scale": False, "dropout": s.dropout}
    return {
        "name": "peers-joeynmt",
        "joeynmt_version": "2.3.0",
        "model_dir": str(model_dir),
        "use_cuda": False,
        "num_workers": 0,
        "data": {
            "train": str(data_dir / "train"),
            "dev": str(data_dir / "dev"),
            "dataset_type": "plain",
            "src": {"lang": langs[0], **side},
            "trg": {"lang": langs[1], **side},
            "special_symbols": dict(SPECIALS),
        },
        "training": {
            "model_dir": str(model_dir),
            "overwrite": True,
            "random_seed": s.seed,
            "optimizer": "adam",
            "adam_betas": [0.9, 0.999],
            "learning_rate": s.lr,
            "learning_rate_min": s.min_lr,
            "scheduling": "plateau",
            "patience": s.plateau_patience,
            "decrease_factor": s.plateau_factor,
            "weight_decay": 0.0,
            "clip_grad_norm": s.clip_norm,
            "label_smoothing": s.label_smoothing,
            "normalization": "tokens",
            "loss": "crossentropy",
            "batch_size": s.batch_tokens,
            "batch_type": "token",
            "batch_multiplier": 1,
            "epochs": s.epochs,
            "validation_freq": s.eval_every,
            "logging_freq": s.log_every,
            "early_stopping_metric": "bleu",
            "keep_best_ckpts": 1,
            "shuffle": True,
            "print_valid_sents": [0],
            "use_cuda": False,
            "fp16": False,
        },
        "testing": {
            "load_model": str(model_dir / "best.ckpt"),
            "n_best": 1,
            "beam_size": s.beam,
            "beam_alpha": s.length_penalty,
            "batch_size": s.decode_batch,
            "batch_type": "sentence",
            "max_output_length": -1,          # 1.5 x the longest source in the batch
            "eval_metrics": ["bleu", "chrf"],
            "sacrebleu_cfg": {"tokenize": "13a"},
        },
        "model": {
            "tied_embeddings": True,
            "tied_softmax": False,            # impossible here: see the module docstring
            "encoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": embeddings,
                        "hidden_size": s.enc_hidden, "bidirectional": True,
                        "dropout": s.dropout, "num_layers": s.layers, "freeze": False},
            "decoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": embeddings,
                        "hidden_size": s.dec_hidden, "dropout": s.dropout,
                        "hidden_dropout": s.dropout, "num_layers": s.layers,
                        "input_feeding": True, "init_hidden": "bridge",
                        "attention": "luong", "freeze": False},
        },
    }


_STEP = re.compile(r"Epoch\s+(\d+), Step:\s+(\d+), Batch Loss:\s+([\d.]+), Batch Acc: [\d.]+, "
                   r"Tokens per Sec:\s+(\d+), Lr: ([\d.e-]+)")
_VALID = re.compile(r"Evaluation result \(greedy\): bleu:\s+([\d.]+)")


def parse_log(text: str) -> dict[str, Any]:
    """Joey's train.log: its own per-interval target tokens/s (validation time excluded by
    Joey itself) and the dev BLEU of each validation, a cross-check of the runner's figures."""
    steps = [(int(m[2]), int(m[4]), float(m[3])) for m in _STEP.finditer(text)]
    valid = [float(m[1]) for m in _VALID.finditer(text)]
    rates = [r for _, r, _ in steps]
    return {"logged_steps": steps[-1][0] if steps else 0,
            "logged_tokens_per_s_median": statistics.median(rates) if rates else None,
            "last_loss": steps[-1][2] if steps else None,
            "dev_bleu": valid}
