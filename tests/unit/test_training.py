"""Local training: overfitting, the toy task's quality and time, resume, LR schedule
(the loop both paths share: train/test_train_loop.py)."""
import json

import pytest
import torch

from s2s.batching import collate
from s2s.config import TrainingConfig
from s2s.prediction import Translator
from s2s.corpus import read_corpus
from s2s.trainer import Trainer
from s2s.training import LRSchedule, train_step

from ..conftest import toy_config
from .conftest import tiny_model


def test_loss_falls_to_near_zero_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = tiny_model(vocab=12, emb_size=16, enc_hidden=16, dec_hidden=32)
    src = [[4, 5, 6, 7], [8, 9, 10], [11, 4, 8, 5, 6]]
    batch = collate(src, [s[::-1] for s in src], [0, 1, 2])
    cfg = TrainingConfig(lr=0.01, warmup_steps=1, label_smoothing=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = LRSchedule(optimizer, cfg)
    losses = [train_step(model, batch, optimizer, schedule, cfg) / batch.ntokens for _ in range(150)]
    assert losses[0] > 2.0 and losses[-1] < 0.02


def test_schedule_warms_up_then_decays_on_plateau():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param])
    cfg = TrainingConfig(lr=1.0, warmup_steps=4, plateau_patience=2, plateau_factor=0.5,
                         min_lr=0.1)
    schedule = LRSchedule(optimizer, cfg)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    for _ in range(5):
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == 1.0
    for score in (10, 9, 8):                     # one best, then two without improvement
        schedule.observe(score)
    assert optimizer.param_groups[0]["lr"] == 0.5
    for score in (1, 1, 1, 1, 1, 1, 1, 1):
        schedule.observe(score)
    assert optimizer.param_groups[0]["lr"] == 0.1  # never below min_lr
    restored = LRSchedule(torch.optim.Adam([param]), cfg)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr() == schedule.lr()


def test_budget_schedule_warms_up_then_falls_linearly_with_the_budget_not_on_plateau():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param])
    cfg = TrainingConfig(lr=1.0, warmup_steps=4, lr_schedule="budget", max_minutes=10,
                         plateau_patience=1, min_lr=0.1)
    schedule = LRSchedule(optimizer, cfg)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    for _ in range(5):
        schedule.step()
    for score in (10, 9, 8):                     # a plateau: no decay in this schedule
        schedule.observe(score)
    assert optimizer.param_groups[0]["lr"] == 1.0
    schedule.spend(0.6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.4)
    schedule.spend(0.95)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # never below min_lr
    schedule.spend(1.5)
    assert schedule.lr() == pytest.approx(0.1)


def test_toy_reverse_reaches_95_percent_exact_match_and_dev_bleu_90_within_30_seconds(toy_model):
    # The config's budget (training.max_minutes 0.9) ends the run by 54 s whatever happens;
    # what can fail is how early the quality comes: the first evaluation at dev BLEU > 90.
    history = json.loads((toy_model.run_dir / "history.json").read_text())
    good = [r for r in history if r["dev_bleu"] > 90]
    assert good, f"dev BLEU never above 90: {[round(r['dev_bleu'], 1) for r in history]}"
    assert good[0]["wall_s"] < 30, good[0]
    translator = Translator.from_checkpoint(toy_model.model_dir, device="cpu")
    test = read_corpus(toy_model.data_dir / "test.parquet")
    hyps = translator.best(test.column("src").to_pylist(), beam=5)
    refs = test.column("tgt").to_pylist()
    assert len(hyps) == len(refs)
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    assert exact >= 0.95, f"exact match {exact:.1%}"
    assert (toy_model.run_dir / "training_curve.png").stat().st_size > 0


def test_rerun_resumes_weights_optimizer_and_schedule_from_the_last_checkpoint(toy_data_dir,
                                                                               tmp_path):
    settings = dict(eval_every=10_000, max_minutes=0.0)
    first = Trainer(toy_config(toy_data_dir, epochs=3, **settings), tmp_path / "a",
                    show_progress=False)
    first.run()
    steps_three_epochs = first.progress.step
    second = Trainer(toy_config(toy_data_dir, epochs=4, **settings), tmp_path / "a",
                     show_progress=False)
    assert second.progress.step == steps_three_epochs and second.progress.epoch == 3
    assert second.schedule.steps == steps_three_epochs
    resumed = second.run()
    assert resumed["steps"] == 4 * steps_three_epochs // 3 and resumed["epochs"] == 4

    # The resumed epoch trained exactly as an uninterrupted run's fourth epoch: weights,
    # Adam's moments, the schedule and the RNG all came back, not a fresh model.
    straight = Trainer(toy_config(toy_data_dir, epochs=4, **settings), tmp_path / "b",
                       show_progress=False).run()
    fresh = straight["history"][0]["train_loss"]
    after = resumed["history"][-1]["train_loss"]
    assert after == pytest.approx(straight["history"][-1]["train_loss"], rel=1e-5)
    assert after < 0.5 * fresh, (after, fresh)       # a fresh model's loss is ~3.1
    assert resumed["history"][-1]["dev_bleu"] == straight["history"][-1]["dev_bleu"]
