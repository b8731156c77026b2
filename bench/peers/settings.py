"""What every tool of the side-by-side run gets: one set of numbers, written into each config.

The sizes are Joey NMT's RNN recipe and s2s's configs/bible-en-fr.yaml: a 1-layer bi-LSTM
encoder of 256 per direction, a 1-layer LSTM decoder of 512, embeddings of 256, Luong
(general, "multiplicative") attention, which all three tools have, a bridge from the
encoder's final states to the decoder's, dropout 0.2 and one shared source/target vocabulary
(tied source and target embeddings). The training settings are the ones s2s's config had
when the comparison was first run (BPE 8,000, Adam 0.002, ~4,000-token batches, clip 1.0,
label smoothing 0.1, a dev check every 500 steps on 200 dev verses); the config has moved on
since (BPE 4,000, 3,000-token batches, Adam 0.003, checkpoint averaging), and these stay so
that every run of this benchmark compares the same thing. Decoding is beam 5, batch 64, GNMT
length penalty 1.0, outputs capped at 1.5x the source length.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    # model
    emb_size: int = 256
    enc_hidden: int = 256          # per direction
    dec_hidden: int = 512
    layers: int = 1
    dropout: float = 0.2
    vocab_size: int = 8000         # SentencePiece BPE, shared en+fr
    max_len: int = 100             # training pieces per side; longer verses are cut
    # training
    minutes: float = 45.0          # wall-clock budget of each tool's training loop
    threads: int = 2
    seed: int = 42
    lr: float = 0.002
    min_lr: float = 1.0e-5
    lr_warmup_steps: int = 200     # s2s's linear LR warm-up (the peers' RNN recipes have none)
    batch_tokens: int = 4000       # batch size x longest side (+1), each tool's token batching
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    eval_every: int = 500          # steps between dev checks (and checkpoints)
    log_every: int = 50
    dev_sentences: int = 200
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    epochs: int = 30               # never reached in the budget
    # decoding
    beam: int = 5
    decode_batch: int = 64
    length_penalty: float = 1.0    # GNMT alpha
    max_len_ratio: float = 1.5
    decode_sentences: int = 256    # the first N test verses, timed
    test_sentences: int = 0        # test verses scored (0: all 1,227)
    warmup_sentences: int = 8      # decoded before the timed run, untimed

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


FULL = Settings()

# A few minutes end to end: the same model and data, a 1.5-minute budget per tool, smaller
# batches and frequent dev checks so each tool validates and checkpoints a few times, and
# 64 test verses decoded (timed and scored). It shows the harness works, not who wins.
SMOKE = FULL.replace(minutes=1.5, batch_tokens=1500, eval_every=20, log_every=5,
                     dev_sentences=32, decode_sentences=64, test_sentences=64)
