"""OpenNMT-py 3.5: how it is installed, its configs for the side-by-side run, its log.

Install: `pip install --no-deps opennmt-py==3.5.1` into .peers/opennmt-venv, then its
declared dependencies except torch (configargparse, ctranslate2, tensorboard, flask,
waitress, pyonmttok, pyyaml, sacrebleu, rapidfuzz, pyahocorasick, fasttext-wheel, spacy,
six). OpenNMT-py 3.5.1 pins `torch<2.3`; resolving that would download a second, older
torch and run the peer on a different build from the other two tools, so torch comes from
s2s's .venv like for every peer (install.py). Its package imports every transform module at
start-up (spacy, fasttext, ... at module level), so the optional-looking dependencies are
needed even though no transform is used here. One fix, applied at install time:

- torch 2.6 made `torch.load(weights_only=True)` the default. OpenNMT-py 3.5's checkpoints
  hold its options (an argparse.Namespace) and vocabularies besides the weights, so
  `onmt_translate` could not load a checkpoint `onmt_train` had just written
  (UnpicklingError). The patch passes `weights_only=False` in its one loader
  (onmt/models/model_saver.py), the behaviour of the torch it was written for; it only ever
  loads the checkpoints this run's training wrote.

The model: `encoder_type: brnn` (bi-LSTM; `enc_hid_size` 512 is split into 256 per
direction), `decoder_type: rnn` (LSTM 512) with `global_attention: general` (Luong),
`input_feed: 1` (its default), `bridge: true`, `word_vec_size` 256, shared vocabulary and
`share_embeddings` (tied source/target embeddings). Like Joey it cannot tie the output
layer (`share_decoder_embeddings` needs dec_hid_size == word_vec_size), so its generator is a
separate 512 x 8,000 layer. Training: Adam 0.002, constant rate (`decay_method: none`;
OpenNMT-py has no schedule on dev scores), token batches (max(src, tgt) per sentence),
loss normalized by tokens, clip 1.0, label smoothing 0.1, one process (`num_workers: 0`:
no data-loader processes competing for the same cores), a bucket of the training set's size
(`bucket_size`: its default, 262,144 examples, holds ~9 copies of each verse of this small
corpus, sorted next to each other into the same batches, and took ~30 s to fill before the
first update in a trial), a dev check (perplexity only) and
a checkpoint every `eval_every` steps. OpenNMT-py keeps the last checkpoints, not a best
one, so the model scored is the last (the budget's end). Decoding: beam 5, batch 64
sentences, GNMT length penalty (`length_penalty: wu`, alpha 1.0), outputs up to 1.5x the
batch's source length + 5 (`max_length_ratio`; its default is 1.25).
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from .install import Patch, PeerSpec
from .settings import Settings

DEPS = ("configargparse", "ctranslate2>=4,<5", "tensorboard>=2.3", "flask", "waitress",
        "pyonmttok>=1.37,<2", "pyyaml", "sacrebleu", "rapidfuzz", "pyahocorasick",
        "fasttext-wheel", "spacy", "six")

SPEC = PeerSpec(
    name="opennmt",
    requirement="opennmt-py==3.5.1",
    no_deps=True,          # it pins torch<2.3: see the module docstring
    deps=DEPS,
    patches=(Patch(
        path="onmt/models/model_saver.py",
        old='checkpoint = torch.load(ckpt_path, map_location=torch.device("cpu"))',
        new='checkpoint = torch.load(ckpt_path, map_location=torch.device("cpu"), '
            'weights_only=False)  # s2s bench/peers: torch >= 2.6 defaults to True',
        why="torch >= 2.6 loads weights only by default; OpenNMT-py's checkpoints hold its "
            "options (an argparse.Namespace) and vocabularies, so it cannot load its own"),),
    check="import onmt.bin.train, onmt.bin.translate, onmt.transforms",
)

UNLIMITED_STEPS = 100_000_000     # the budget, not a step count, ends training


def train_config(s: Settings, data_dir: Path, out_dir: Path, langs: tuple[str, str],
                 vocab_file: Path, train_size: int) -> dict[str, Any]:
    """`train_size`: training pairs; OpenNMT-py's bucket (what it sorts into batches) is
    made that large, see the module docstring."""
    src, tgt = langs
    return {
        "save_data": str(out_dir / "samples"),
        "src_vocab": str(vocab_file),
        "tgt_vocab": str(vocab_file),
        "share_vocab": True,
        "src_vocab_size": s.vocab_size,
        "tgt_vocab_size": s.vocab_size,
        "overwrite": True,
        "data": {
            "corpus_1": {"path_src": str(data_dir / f"train.{src}"),
                         "path_tgt": str(data_dir / f"train.{tgt}")},
            "valid": {"path_src": str(data_dir / f"dev.{src}"),
                      "path_tgt": str(data_dir / f"dev.{tgt}")},
        },
        "save_model": str(out_dir / "model"),
        "save_checkpoint_steps": s.eval_every,
        "keep_checkpoint": 2,
        "valid_steps": s.eval_every,
        "report_every": s.log_every,
        "train_steps": UNLIMITED_STEPS,
        "seed": s.seed,
        "world_size": 1,
        "gpu_ranks": [],
        "num_workers": 0,
        "log_file": str(out_dir / "train.log"),
        # model
        "model_task": "seq2seq",
        "encoder_type": "brnn",
        "decoder_type": "rnn",
        "rnn_type": "LSTM",
        "enc_layers": s.layers,
        "dec_layers": s.layers,
        "enc_hid_size": 2 * s.enc_hidden,        # both directions together
        "dec_hid_size": s.dec_hidden,
        "word_vec_size": s.emb_size,
        "global_attention": "general",
        "global_attention_function": "softmax",
        "input_feed": 1,
        "bridge": True,
        "share_embeddings": True,
        "share_decoder_embeddings": False,      # impossible here: see the module docstring
        "dropout": [s.dropout],
        # optimization
        "optim": "adam",
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "learning_rate": s.lr,
        "decay_method": "none",
        "max_grad_norm": s.clip_norm,
        "label_smoothing": s.label_smoothing,
        "batch_type": "tokens",
        "batch_size": s.batch_tokens,
        "bucket_size": train_size,
        "valid_batch_size": s.decode_batch,
        "normalization": "tokens",
        "accum_count": [1],
        "model_dtype": "fp32",
    }


def translate_config(s: Settings, model: Path, src: Path, output: Path,
                     log_file: Path) -> dict[str, Any]:
    return {
        "model": str(model),
        "src": str(src),
        "output": str(output),
        "beam_size": s.beam,
        "n_best": 1,
        "batch_size": s.decode_batch,
        "batch_type": "sents",
        "length_penalty": "wu",
        "alpha": s.length_penalty,
        "max_length": 250,
        "max_length_ratio": s.max_len_ratio,
        "gpu": -1,
        "world_size": 1,
        "seed": s.seed,
        "report_time": True,
        "log_file": str(log_file),
    }


_STEP = re.compile(r"Step (\d+)(?:/\s*\d+)?; acc: +([\d.]+); ppl: +([\d.]+); xent: +([\d.]+); "
                   r"lr: +([\d.]+); sents: +(\d+); bsz: +[\d.]+/ *[\d.]+/ *[\d.]+; "
                   r"(\d+)/ *(\d+) tok/s; +(\d+) sec;")
_VALID = re.compile(r"Validation perplexity: ([\d.e+]+)")


def parse_log(text: str) -> dict[str, Any]:
    """OpenNMT-py's train.log: its own per-report target tokens/s and the dev perplexity of
    each validation, a cross-check of the runner's figures."""
    steps = [(int(m[1]), int(m[8]), float(m[4])) for m in _STEP.finditer(text)]
    rates = [r for _, r, _ in steps]
    return {"logged_steps": steps[-1][0] if steps else 0,
            "logged_tokens_per_s_median": statistics.median(rates) if rates else None,
            "last_xent": steps[-1][2] if steps else None,
            "dev_ppl": [float(m[1]) for m in _VALID.finditer(text)]}


_CKPT = re.compile(r"_step_(\d+)\.pt$")


def last_checkpoint(out_dir: Path) -> Path | None:
    found = [(int(m[1]), p) for p in Path(out_dir).glob("model_step_*.pt")
             if (m := _CKPT.search(p.name))]
    return max(found)[1] if found else None
