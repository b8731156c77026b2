"""The single-process training run: `s2s train --config FILE`.

    s2s train --config configs/toy-reverse.yaml --out runs/toy

Writes OUT/best (best dev score) and OUT/last (latest, with optimizer/scheduler/
RNG/data position so a rerun resumes where it stopped), OUT/history.json and
OUT/training_curve.png. With training.average_last N also OUT/recent/step-<S> (the last
N saved checkpoints) and, at the end, OUT/averaged (their average, scored on dev).
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .averaging import RecentWeights, dev_scorer, export_average
from .checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from .config import ExperimentConfig
from .corpus import read_corpus
from .model import build_model
from .plotting import write_history
from .precision import MixedPrecision
from .prediction import Translator, resolve_device
from .training import (LRSchedule, Progress, encode_corpus, evaluate, rng_state,
                       seed_everything, set_rng_state, set_threads, to_device, train_step)
from .subword import with_sampling
from .vocabulary import learn_vocabularies

log = logging.getLogger(__name__)


class Trainer:
    def __init__(self, cfg: ExperimentConfig, out_dir: str | Path, show_progress: bool = True):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.show_progress = show_progress and sys.stderr.isatty()
        set_threads(cfg.training.threads)
        seed_everything(cfg.training.seed)
        self.device = resolve_device(cfg.training.device)
        self.precision = MixedPrecision(self.device)     # bf16/fp16 on CUDA, fp32 on CPU
        self.progress = Progress()
        resume_state = load_trainer_state(self.out_dir / "last")
        self._load_vocab_and_model(resume_state is not None)
        self._load_data()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.training.lr)
        self.schedule = LRSchedule(self.optimizer, cfg.training)
        self.recent = (RecentWeights(cfg.training.average_last, self.out_dir / "recent",
                                     self._save_plain) if cfg.training.average_last else None)
        if resume_state is not None:
            self._resume(resume_state)

    def _load_vocab_and_model(self, resuming: bool) -> None:
        cfg = self.cfg
        self.train_table = read_corpus(cfg.data.train)
        if resuming:
            loaded = load_checkpoint(self.out_dir / "last", self.device)
            self.model, self.src_vocab, self.tgt_vocab = loaded.model, loaded.src_vocab, loaded.tgt_vocab
            return
        self.src_vocab, self.tgt_vocab = learn_vocabularies(
            self.train_table.column("src").to_pylist(), self.train_table.column("tgt").to_pylist(),
            cfg.data.tokenizer, cfg.training.seed)
        self.model = build_model(cfg.model, len(self.src_vocab), len(self.tgt_vocab),
                                 self.src_vocab is self.tgt_vocab, cfg.training.seed).to(self.device)

    def _load_data(self) -> None:
        d = self.cfg.data
        self.train = with_sampling(encode_corpus(self.train_table, self.src_vocab,
                                                 self.tgt_vocab, d.max_src_len, d.max_tgt_len),
                                   self.cfg, self.src_vocab, self.tgt_vocab)
        dev_table = read_corpus(d.dev) if d.dev else self.train_table.slice(0, 200)
        self.dev = encode_corpus(dev_table, self.src_vocab, self.tgt_vocab,
                                 d.max_src_len, d.max_tgt_len)
        self.translator = Translator(self.model, self.src_vocab, self.tgt_vocab, self.cfg.testing,
                                     d.max_src_len, d.max_tgt_len, self.device)

    def _resume(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        if "grad_scaler" in state:
            self.precision.scaler.load_state_dict(state["grad_scaler"])
        log.info("resuming from step %d (epoch %d, batch %d)", self.progress.step,
                 self.progress.epoch, self.progress.batch_in_epoch)

    def trainer_state(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                 "progress": asdict(self.progress), "rng": rng_state()}
        if self.precision.scaler.is_enabled():
            state["grad_scaler"] = self.precision.scaler.state_dict()
        return state

    def run(self) -> dict[str, Any]:
        """Train until epochs, the time budget or early stopping ends it."""
        t = self.cfg.training
        self._started, self._window = time.time(), [0.0, 0, 0.0]   # loss, tokens, seconds
        bar = tqdm(desc="train", unit="step", disable=not self.show_progress, dynamic_ncols=True)
        stop = False
        while self.progress.epoch < t.epochs and not stop:
            stop = self._run_epoch(bar)
            if not stop:
                self.progress.epoch += 1
                self.progress.batch_in_epoch = 0
                stop = self.validate()
        bar.close()
        return self._finish()

    def _run_epoch(self, bar: tqdm) -> bool:
        t, p = self.cfg.training, self.progress
        batches = self.train.batches(t.batch_tokens, t.seed, p.epoch)
        for index in range(p.batch_in_epoch, len(batches)):
            batch = to_device(self.train.collate(batches[index]), self.device)
            started = time.perf_counter()
            loss = train_step(self.model, batch, self.optimizer, self.schedule, t, self.precision)
            elapsed = time.perf_counter() - started
            p.step, p.batch_in_epoch = p.step + 1, index + 1
            p.tokens, p.train_seconds = p.tokens + batch.ntokens, p.train_seconds + elapsed
            self._window = [self._window[0] + loss, self._window[1] + batch.ntokens,
                            self._window[2] + elapsed]
            bar.update(1)
            bar.set_postfix(epoch=p.epoch + 1, loss=f"{loss / batch.ntokens:.3f}",
                            tok_s=f"{batch.ntokens / elapsed:.0f}", refresh=False)
            if not self.show_progress and t.log_every and p.step % t.log_every == 0:
                self._log_line(loss / batch.ntokens, batch.ntokens / elapsed)
            if p.step % t.eval_every == 0 and self.validate():
                return True
            if self._out_of_time():
                self.validate()
                return True
        return False

    def _log_line(self, loss: float, tokens_per_s: float) -> None:
        p = self.progress
        print(f"step {p.step} epoch {p.epoch + 1} batch {p.batch_in_epoch} loss {loss:.3f} "
              f"tok/s {tokens_per_s:.0f} lr {self.schedule.lr():.2e} "
              f"({time.time() - self._started:.0f}s)", file=sys.stderr, flush=True)

    def _out_of_time(self) -> bool:
        budget = self.cfg.training.max_minutes
        return budget > 0 and time.time() - self._started >= budget * 60

    def validate(self) -> bool:
        """Score dev, save last (and best), decay LR on plateau; True = stop early."""
        p, t = self.progress, self.cfg.training
        metrics = evaluate(self.translator, self.dev, self.cfg.data.task, t.dev_sentences)
        score = next(iter(metrics.values()))
        loss, tokens, seconds = self._window
        record = {"step": p.step, "epoch": p.epoch, "lr": self.schedule.lr(),
                  "train_loss": loss / max(tokens, 1), "tokens_per_s": tokens / max(seconds, 1e-9),
                  "wall_s": time.time() - self._started, **{f"dev_{k}": v for k, v in metrics.items()}}
        p.history.append(record)
        self._window = [0.0, 0, 0.0]
        self.schedule.observe(score)
        improved = score > p.best_score
        p.best_score, p.bad_evals = (score, 0) if improved else (p.best_score, p.bad_evals + 1)
        tqdm.write(_format_record(record), file=sys.stderr)
        self._save(metrics, improved)
        return t.early_stopping > 0 and p.bad_evals >= t.early_stopping

    def _save(self, metrics: dict[str, float], improved: bool) -> None:
        if improved:
            save_checkpoint(self.out_dir / "best", self.model, self.src_vocab, self.tgt_vocab,
                            self.cfg, metrics)
        save_checkpoint(self.out_dir / "last", self.model, self.src_vocab, self.tgt_vocab,
                        self.cfg, metrics, self.trainer_state())
        if self.recent is not None:
            self.recent.add(self.model, self.progress.step)

    def _save_plain(self, path, model) -> None:
        """A checkpoint of `model` without trainer state (what OUT/recent keeps)."""
        save_checkpoint(path, model, self.src_vocab, self.tgt_vocab, self.cfg)

    def _finish(self) -> dict[str, Any]:
        p = self.progress
        history = p.history
        write_history(history, self.out_dir)
        summary = {"steps": p.step, "epochs": p.epoch, "best_score": p.best_score,
                   "tokens_per_s": p.tokens / max(p.train_seconds, 1e-9),
                   "best": str(self.out_dir / "best"), "history": history}
        if self.recent:
            score = dev_scorer(self.translator, self.dev, self.cfg.data.task,
                               self.cfg.training.dev_sentences)
            summary["averaged"] = export_average(self.recent, self.model, self.src_vocab,
                                                 self.tgt_vocab, self.cfg,
                                                 self.out_dir / "averaged", score)
        return summary


def _format_record(r: dict[str, float]) -> str:
    dev = " ".join(f"{k}={v:.2f}" for k, v in r.items() if k.startswith("dev_"))
    return (f"step {r['step']} epoch {r['epoch']} loss {r['train_loss']:.3f} "
            f"tok/s {r['tokens_per_s']:.0f} lr {r['lr']:.2e} {dev} ({r['wall_s']:.0f}s)")
