"""Resume bookkeeping, worker payloads and progress lines (capacity: test_train_capacity.py)."""
import io
import random
from dataclasses import asdict

import pytest
import torch

from s2s.config import ExperimentConfig, TokenizerConfig, TrainingConfig, from_dict
from s2s.train.config import RayTrainConfig
from s2s.train.job import TrainJob, epoch_seen_after, pack_state, unpack_state
from s2s.train.progress import format_report, summarize_reports
from s2s.train_loop import window_stats
from s2s.training import LRSchedule, Progress, rng_state, seed_everything, set_rng_state
from s2s.vocabulary import learn_vocabulary


def optimizer_and_schedule():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return optimizer, LRSchedule(optimizer, TrainingConfig(warmup_steps=10))


def round_trip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)    # what load_trainer_state does


def loop_state(optimizer, schedule, progress):
    """What train_loop.trainer_state holds (without building a whole loop)."""
    return {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "progress": asdict(progress)}


def rng_after(seed: int) -> dict:
    """The RNG state of a rank seeded with `seed` that has drawn a little."""
    seed_everything(seed)
    torch.rand(3), random.random()
    return rng_state()


def test_trainer_state_survives_a_weights_only_round_trip():
    optimizer, schedule = optimizer_and_schedule()
    schedule.step()
    progress = Progress(step=12, epoch=1, history=[{"step": 10, "dev_bleu": 3.0}])
    seen = {5, 2**64 - 1}
    state = round_trip(pack_state(loop_state(optimizer, schedule, progress), seen,
                                  [rng_after(1), rng_after(2)]))
    restored = unpack_state(state, rank=1, world_size=2)
    assert Progress(**restored.trainer["progress"]) == progress and restored.seen == seen
    assert restored.trainer["schedule"] == schedule.state_dict()
    assert (restored.trainer["optimizer"]["state"][0]["step"]
            == optimizer.state_dict()["state"][0]["step"])


def test_every_rank_gets_its_own_rng_back():
    optimizer, schedule = optimizer_and_schedule()
    per_rank = [rng_after(seed) for seed in (10, 11, 12)]
    state = round_trip(pack_state(loop_state(optimizer, schedule, Progress()), set(), per_rank))
    draws = []
    for rank in range(3):
        rng = unpack_state(state, rank=rank, world_size=3).rng
        assert torch.equal(rng["torch"], per_rank[rank]["torch"]), rank
        set_rng_state(rng)
        draws.append((torch.rand(4).tolist(), random.random()))
    expected = []
    for rank in range(3):
        set_rng_state(per_rank[rank])
        expected.append((torch.rand(4).tolist(), random.random()))
    assert draws == expected
    assert len({str(d) for d in draws}) == 3          # the ranks' streams really differ


def test_rng_is_not_reused_when_the_world_size_changed():
    optimizer, schedule = optimizer_and_schedule()
    state = round_trip(pack_state(loop_state(optimizer, schedule, Progress()), set(),
                                  [rng_after(1), rng_after(2)]))
    assert unpack_state(state, rank=0, world_size=3).rng is None


def test_epoch_seen_set_grows_with_every_rank():
    assert epoch_seen_after({1}, [[2, 3], [4]]) == {1, 2, 3, 4}


def test_window_stats_total_throughput_uses_the_slowest_rank():
    stats = window_stats([{"loss": 10.0, "tokens": 100, "seconds": 1.0},
                          {"loss": 30.0, "tokens": 300, "seconds": 2.0}])
    assert stats["train_loss"] == pytest.approx(0.1)
    assert stats["tokens_per_s"] == pytest.approx(200.0)
    assert stats["tokens_per_s_workers"] == pytest.approx([100.0, 150.0])


def test_job_payload_round_trip_keeps_a_shared_vocabulary_shared():
    vocab = learn_vocabulary(["a b c", "c b a d"] * 20, TokenizerConfig(type="word", vocab_size=10))
    cfg = from_dict(ExperimentConfig, {"data": {"train": "t.parquet"}}).validate()
    job = TrainJob(cfg, RayTrainConfig(workers=2), vocab, vocab, ["a b"], ["b a"])
    back = TrainJob.from_loop_config(job.to_loop_config())
    assert back.src_vocab is back.tgt_vocab and back.src_vocab.encode(["a b"]) == vocab.encode(["a b"])
    assert back.experiment == cfg and back.ray.workers == 2
    assert back.dev_table().to_pylist() == [{"src": "a b", "tgt": "b a"}]


def test_progress_line_shows_every_worker_and_the_resume_point():
    metrics = {"step": 20, "epoch": 1, "train_loss": 1.5, "tokens_per_s": 2000.0, "lr": 0.001,
               "wall_s": 12.0, "dev_bleu": 33.3, "dev_chrf": 50.0, "dev_score": 33.3,
               "tokens_per_s_workers": [1000.0, 1010.0], "resumed_from": 10}
    record = summarize_reports([{**metrics, "rank": 0, "node": "n1"},
                                {**metrics, "rank": 1, "node": "n2"}])
    assert record["nodes"] == ["n1", "n2"] and "rank" not in record
    line = format_report(record)
    assert line.startswith("s2s-train: step 20 epoch 1 loss 1.500 tok/s 2000 (workers: 1000, 1010)")
    assert "dev_bleu=33.30" in line and "dev_score" not in line
    assert line.endswith("[resumed from step 10]")
