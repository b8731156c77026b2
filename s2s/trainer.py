"""The single-process training run, `s2s train --config FILE`: the local seams of the one
loop in `train_loop.py`.

    s2s train --config configs/toy-reverse.yaml --out runs/toy

Writes OUT/best (best dev score) and OUT/last (latest, with optimizer/scheduler/
RNG/data position so a rerun resumes where it stopped), OUT/history.json and
OUT/training_curve.png. With training.average_last N also OUT/recent/step-<S> (the last
N saved checkpoints) and, at the end, OUT/averaged (their average, scored on dev).

Here the loop's feed is the whole training split encoded in memory (with sampled
segmentations under subword regularization), resumed at a batch index of the epoch's
fixed batch order; the ranks are `SingleProcess`; each step updates a progress bar (or a
log line every training.log_every steps when stderr is not a terminal).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
from tqdm import tqdm

from .averaging import RecentWeights
from .checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from .config import ExperimentConfig
from .corpus import read_corpus
from .model import build_model
from .plotting import write_history
from .prediction import resolve_device
from .subword import with_sampling
from .train_loop import (Evaluation, SingleProcess, StepDone, TrainLoop, build_loop,
                         export_recent_average, resume_from, run_training, trainer_state)
from .training import (EncodedCorpus, LRSchedule, Progress, encode_corpus, rng_state,
                       seed_everything, set_rng_state, set_threads)
from .vocabulary import learn_vocabularies

log = logging.getLogger(__name__)


class Trainer:
    """A local run: builds the loop (resuming from OUT/last when it holds trainer state);
    `run()` trains and returns the summary `s2s train` prints."""

    def __init__(self, cfg: ExperimentConfig, out_dir: str | Path, show_progress: bool = True):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        t = cfg.training
        set_threads(t.threads)
        seed_everything(t.seed)
        device = resolve_device(t.device)
        resume_state = load_trainer_state(self.out_dir / "last")
        train_table = read_corpus(cfg.data.train)
        model, vocabs = self._model(train_table, resume_state is not None, device)
        dev_table = read_corpus(cfg.data.dev) if cfg.data.dev else train_table.slice(0, 200)
        self.console = Console(show_progress and sys.stderr.isatty(), t.log_every)
        self.loop = build_loop(cfg, model, vocabs, dev_table, device,
                               feed=CorpusFeed(self._train_corpus(train_table, vocabs),
                                               t.batch_tokens, t.seed),
                               ranks=SingleProcess(),
                               checkpoints=LocalCheckpoints(self.out_dir, cfg, vocabs),
                               report_every=t.eval_every, on_step=self.console.step)
        if resume_state is not None:
            self._resume(resume_state)

    @property
    def progress(self) -> Progress:
        return self.loop.progress

    @property
    def schedule(self) -> LRSchedule:
        return self.loop.schedule

    def _model(self, train_table: pa.Table, resuming: bool, device):
        """(model, (src_vocab, tgt_vocab)): OUT/last's when resuming, else new ones."""
        cfg = self.cfg
        if resuming:
            loaded = load_checkpoint(self.out_dir / "last", device)
            return loaded.model, (loaded.src_vocab, loaded.tgt_vocab)
        src, tgt = learn_vocabularies(
            train_table.column("src").to_pylist(), train_table.column("tgt").to_pylist(),
            cfg.data.tokenizer, cfg.training.seed)
        model = build_model(cfg.model, len(src), len(tgt), src is tgt, cfg.training.seed)
        return model.to(device), (src, tgt)

    def _train_corpus(self, table: pa.Table, vocabs) -> EncodedCorpus:
        d, (src, tgt) = self.cfg.data, vocabs
        encoded = encode_corpus(table, src, tgt, d.max_src_len, d.max_tgt_len)
        return with_sampling(encoded, self.cfg, src, tgt)

    def _resume(self, state: dict[str, Any]) -> None:
        resume_from(self.loop, state)
        set_rng_state(state["rng"])
        p = self.loop.progress
        log.info("resuming from step %d (epoch %d, batch %d)", p.step, p.epoch, p.batch_in_epoch)

    def run(self) -> dict[str, Any]:
        """Train until epochs, the time budget or early stopping ends it."""
        with self.console:
            return run_training(self.loop)


def local_trainer_state(loop: TrainLoop) -> dict[str, Any]:
    """OUT/last's trainer state: the loop's, plus this process's RNG."""
    return {**trainer_state(loop), "rng": rng_state()}


class CorpusFeed:
    """Batches of the whole encoded training split in the order fixed by (seed, epoch);
    a resumed epoch starts at `progress.batch_in_epoch`, as an uninterrupted one would be."""

    def __init__(self, corpus: EncodedCorpus, batch_tokens: int, seed: int):
        self.corpus, self.batch_tokens, self.seed = corpus, batch_tokens, seed
        self.examples = 0                     # trained on since the last evaluation

    def epoch(self, progress: Progress, ranks: SingleProcess) -> list[list[int]]:
        batches = self.corpus.batches(self.batch_tokens, self.seed, progress.epoch)
        return batches[progress.batch_in_epoch:]

    def batch(self, indices: Sequence[int], epoch: int):
        return self.corpus.collate(indices)   # a SampledCorpus took the epoch from `batches`

    def trained(self, indices: Sequence[int]) -> None:
        self.examples += len(indices)

    def window_done(self, progress: Progress, ranks: SingleProcess, epoch_done: bool) -> int:
        examples, self.examples = self.examples, 0
        return examples


class LocalCheckpoints:
    """After every evaluation a line on stderr, OUT/best when the score improved, OUT/last
    with the trainer state, and OUT/recent/step-<S> with training.average_last; at the end
    OUT/history.json, the training curve and OUT/averaged."""

    def __init__(self, out_dir: Path, cfg: ExperimentConfig, vocabs: tuple):
        self.out_dir, self.cfg, (self.src_vocab, self.tgt_vocab) = out_dir, cfg, vocabs
        keep = cfg.training.average_last    # a resumed run finds what it saved before
        self.recent = RecentWeights(keep, out_dir / "recent", self._save) if keep else None

    def save(self, loop: TrainLoop, evaluation: Evaluation) -> None:
        tqdm.write(format_record(evaluation.record), file=sys.stderr)
        if evaluation.improved:
            self._save(self.out_dir / "best", loop.model, evaluation.dev)
        self._save(self.out_dir / "last", loop.model, evaluation.dev, local_trainer_state(loop))
        if self.recent is not None:
            self.recent.add(loop.model, loop.progress.step)

    def _save(self, path: Path, model, metrics=None, state=None) -> None:
        """A checkpoint of `model` (OUT/recent's have neither metrics nor trainer state)."""
        save_checkpoint(path, model, self.src_vocab, self.tgt_vocab, self.cfg, metrics, state)

    def finish(self, loop: TrainLoop) -> dict[str, Any]:
        p = loop.progress
        write_history(p.history, self.out_dir)
        summary = {"steps": p.step, "epochs": p.epoch, "best_score": p.best_score,
                   "tokens_per_s": p.tokens / max(p.train_seconds, 1e-9),
                   "best": str(self.out_dir / "best"), "history": p.history}
        if self.recent:
            summary["averaged"] = export_recent_average(loop, self.recent,
                                                        self.out_dir / "averaged")
        return summary


class Console:
    """The local run's step display: a tqdm bar on a terminal, else one line on stderr
    every `log_every` steps. A context manager: the bar lives while training runs."""

    def __init__(self, show_bar: bool, log_every: int):
        self.show_bar, self.log_every, self.bar = show_bar, log_every, None

    def __enter__(self) -> "Console":
        self.bar = tqdm(desc="train", unit="step", disable=not self.show_bar, dynamic_ncols=True)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def step(self, done: StepDone) -> None:
        p, loss, tok_s = done.progress, done.loss / done.tokens, done.tokens / done.seconds
        self.bar.update(1)
        self.bar.set_postfix(epoch=p.epoch + 1, loss=f"{loss:.3f}", tok_s=f"{tok_s:.0f}",
                             refresh=False)
        if not self.show_bar and self.log_every and p.step % self.log_every == 0:
            print(f"step {p.step} epoch {p.epoch + 1} batch {p.batch_in_epoch} loss {loss:.3f} "
                  f"tok/s {tok_s:.0f} lr {done.lr:.2e} ({done.wall_s:.0f}s)",
                  file=sys.stderr, flush=True)


def format_record(r: dict[str, float]) -> str:
    dev = " ".join(f"{k}={v:.2f}" for k, v in r.items() if k.startswith("dev_"))
    return (f"step {r['step']} epoch {r['epoch']} loss {r['train_loss']:.3f} "
            f"tok/s {r['tokens_per_s']:.0f} lr {r['lr']:.2e} {dev} ({r['wall_s']:.0f}s)")
