"""The one training loop (s2s/train_loop.py) driven by hand: the Ray path's feed and
checkpoint format with fake collectives against the local trainer, the meaning of the
history's `lr`, early stopping and the time budget of any rank. No Ray here."""
from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch

from s2s import train_loop
from s2s.corpus import read_corpus
from s2s.model import build_model
from s2s.train.data import ShardFeed
from s2s.train.job import pack_state
from s2s.train.sharding import Shard
from s2s.train_loop import (HISTORY_KEYS, Clock, SingleProcess, build_loop, run_training,
                            trainer_state)
from s2s.trainer import CorpusFeed, Trainer
from s2s.training import encode_corpus, rng_state, seed_everything, set_threads
from s2s.vocabulary import learn_vocabularies

from ...conftest import toy_config

CPU = torch.device("cpu")


class TwinRanks:
    """Rank 0 of two whose twin does exactly what it does: every collective runs its
    world-size-2 path (gathered lists of two, summed windows, the seen set of both)."""
    rank, world = 0, 2

    def gather(self, value):
        return [value, copy.deepcopy(value)]

    def broadcast(self, value):
        return value

    def max(self, value):
        return value


class PackedReports:
    """Checkpoints as the Ray path packs them (trainer state + seen set + every rank's
    RNG), through a weights-only round trip; the run's history is the last one's, as
    `launcher.export_result` reads it."""

    def __init__(self, feed: ShardFeed):
        self.feed, self.states = feed, []

    def save(self, loop, evaluation):
        state = pack_state(trainer_state(loop), self.feed.seen, loop.ranks.gather(rng_state()))
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        self.states.append(torch.load(buffer, weights_only=True))

    def finish(self, loop):
        return {"history": self.states[-1]["progress"]["history"]}


class Recorded:
    """Checkpoints that only remember what they were handed."""

    def __init__(self):
        self.evaluations, self.finished = [], False

    def save(self, loop, evaluation):
        self.evaluations.append(evaluation)

    def finish(self, loop):
        self.finished = True
        return {}


def toy_parts(data_dir, **training):
    """The toy config (on CPU), its vocabulary as `Trainer` learns it, the encoded training
    split and the dev table."""
    cfg = toy_config(data_dir, device="cpu", **training)
    train = read_corpus(cfg.data.train)
    vocabs = learn_vocabularies(train.column("src").to_pylist(), train.column("tgt").to_pylist(),
                                cfg.data.tokenizer, cfg.training.seed)
    encoded = encode_corpus(train, *vocabs, cfg.data.max_src_len, cfg.data.max_tgt_len)
    return cfg, vocabs, encoded, read_corpus(cfg.data.dev)


def new_model(cfg, vocabs):
    """Seeded as both paths seed a fresh run (rank 0)."""
    set_threads(cfg.training.threads)
    seed_everything(cfg.training.seed)
    src, tgt = vocabs
    return build_model(cfg.model, len(src), len(tgt), src is tgt, cfg.training.seed)


def test_history_has_the_same_shape_and_meaning_on_both_paths(toy_data_dir, tmp_path):
    # Two epochs with mid-epoch evaluations (32 steps per epoch; evaluations at 20, 32, 40,
    # 60, 64): the local trainer against the loop fed like a Ray rank, with collectives of
    # two identical ranks and the Ray checkpoint format.
    settings = dict(epochs=2, eval_every=20, max_minutes=0.0)
    local = Trainer(toy_config(toy_data_dir, device="cpu", **settings), tmp_path,
                    show_progress=False).run()
    written = json.loads((tmp_path / "history.json").read_text())

    cfg, vocabs, encoded, dev = toy_parts(toy_data_dir, **settings)
    model = new_model(cfg, vocabs)
    shard = Shard(np.arange(len(encoded), dtype=np.uint64), encoded.src, encoded.tgt)
    feed = ShardFeed(shard, cfg.training.batch_tokens, cfg.training.seed)
    loop = build_loop(cfg, model, vocabs, dev, CPU, feed=feed, ranks=TwinRanks(),
                      checkpoints=PackedReports(feed), report_every=cfg.training.eval_every)
    ray_like = run_training(loop)["history"]

    assert written == json.loads(json.dumps(local["history"]))
    assert [r["step"] for r in written] == [20, 32, 40, 60, 64]
    dev_keys = {"dev_bleu", "dev_chrf"}
    for here, there in zip(written, ray_like, strict=True):
        assert set(here) == set(there) == set(HISTORY_KEYS) | dev_keys
        assert {k: here[k] for k in ("step", "epoch", "lr")} == \
               {k: there[k] for k in ("step", "epoch", "lr")}
        assert there["train_loss"] == pytest.approx(here["train_loss"], rel=1e-5)
        assert {k: there[k] for k in dev_keys} == pytest.approx({k: here[k] for k in dev_keys})
        assert there["tokens_per_s"] > 0 and there["wall_s"] > 0


def scripted_loop(data_dir, monkeypatch, scores, **training):
    """The local loop on the toy data whose dev evaluations score `scores`, in order."""
    cfg, vocabs, encoded, dev = toy_parts(data_dir, **training)
    script = iter(scores)
    monkeypatch.setattr(train_loop, "evaluate", lambda *args, **kw: {"bleu": next(script)})
    checkpoints = Recorded()
    loop = build_loop(cfg, new_model(cfg, vocabs), vocabs, dev, CPU,
                      feed=CorpusFeed(encoded, cfg.training.batch_tokens, cfg.training.seed),
                      ranks=SingleProcess(), checkpoints=checkpoints,
                      report_every=cfg.training.eval_every)
    return loop, checkpoints


def test_lr_is_the_rate_trained_with_and_a_plateau_decay_shows_in_the_next_record(
        toy_data_dir, monkeypatch):
    loop, checkpoints = scripted_loop(
        toy_data_dir, monkeypatch, [10, 5, 5, 20, 1, 1, 1], epochs=1, eval_every=2,
        warmup_steps=1, plateau_patience=1, plateau_factor=0.5, min_lr=1e-9, early_stopping=3)
    run_training(loop)
    base = loop.cfg.training.lr
    history = loop.progress.history
    assert [r["lr"] for r in history] == pytest.approx(
        [base, base, base / 2, base / 4, base / 4, base / 8, base / 16])
    assert loop.schedule.lr() == pytest.approx(base / 32)     # the last decay, not recorded
    # Early stopping: three evaluations without a new best after the 20.
    assert [r["step"] for r in history] == [2, 4, 6, 8, 10, 12, 14]
    assert [e.improved for e in checkpoints.evaluations] == [True, False, False, True,
                                                             False, False, False]
    assert loop.progress.best_score == 20 and loop.progress.bad_evals == 3
    assert checkpoints.finished


class OtherRankOutOfTime(SingleProcess):
    """Another rank runs out of time at the third step; this one never does."""

    def __init__(self):
        self.calls = 0

    def max(self, value):
        self.calls += 1
        return Clock.PARTS if self.calls >= 3 else value


def test_a_rank_out_of_time_stops_every_rank_after_one_last_evaluation(toy_data_dir,
                                                                        monkeypatch):
    loop, checkpoints = scripted_loop(toy_data_dir, monkeypatch, [1.0, 2.0], epochs=3,
                                      eval_every=1000, max_minutes=60.0)
    loop.ranks = OtherRankOutOfTime()
    run_training(loop)
    assert [(r["step"], r["epoch"]) for r in loop.progress.history] == [(3, 0)]
    assert loop.progress.batch_in_epoch == 3 and checkpoints.finished


class QuarterPerStep(SingleProcess):
    """The ranks agree that each step spent another quarter of the budget."""

    def __init__(self):
        self.calls = 0

    def max(self, value):
        self.calls += 1
        return self.calls * Clock.PARTS // 4


def test_a_budget_schedule_decays_the_lr_with_the_budget_every_rank_reports(toy_data_dir,
                                                                            monkeypatch):
    loop, _ = scripted_loop(toy_data_dir, monkeypatch, [1.0, 2.0, 3.0], epochs=3, eval_every=1000,
                            max_minutes=60.0, lr_schedule="budget", warmup_steps=1, min_lr=1e-9)
    loop.ranks = QuarterPerStep()
    rates = []
    loop.on_step = lambda done: rates.append(done.lr)
    run_training(loop)
    base = loop.cfg.training.lr
    # Each step's record shows the rate its successor takes: a quarter less per step, down
    # to min_lr once the budget is spent (which stops training after one last evaluation).
    assert rates == pytest.approx([base, base * 0.75, base * 0.5, base * 0.25])
    assert loop.schedule.lr() == pytest.approx(1e-9)
    assert [r["step"] for r in loop.progress.history] == [4]
