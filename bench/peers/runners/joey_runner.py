"""Joey NMT 2.3 under the side-by-side budget; run by the Joey virtualenv's Python.

    python joey_runner.py train  --config C.yaml --minutes M --threads T --result R.json
    python joey_runner.py decode --config C.yaml --input SRC --output HYP --warmup N
                                 --threads T --result R.json

train: what `python -m joeynmt train C.yaml --skip-test` does (joeynmt.training.train), with
three hooks on its TrainManager and nothing else changed. (1) Joey has no time limit: after
each update, once the budget is spent, the hook sets the flag Joey's own `updates:` limit
sets, so Joey ends the loop itself and saves its latest weights. (2) Then one more dev
check, as s2s makes at its deadline: Joey keeps best.ckpt by dev BLEU, and the last
updates would otherwise never be scored. (3) The time of dev checks and checkpoint writing
is measured, so training seconds exclude it, as s2s's do.

decode: what `python -m joeynmt translate C.yaml < SRC` does (parse_global_args, prepare,
StreamDataset.set_item per line, one predict call), with the set_item + predict of the
timed lines on the clock and model loading off it; N lines first, untimed, as a warm-up.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from budget import Clock, run_mode, set_threads, timed, write_decode_result, write_train_result


def train(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    from joeynmt import training
    from joeynmt.config import load_config
    from joeynmt.helpers import make_model_dir
    from joeynmt.helpers_for_ddp import get_logger

    cfg = load_config(Path(args.config))
    model_dir = Path(cfg["model_dir"])
    make_model_dir(model_dir, overwrite=True)
    shutil.copy2(args.config, model_dir / "config.yaml")
    get_logger("", log_file=(model_dir / "train.log").as_posix())

    clock, info = Clock(args.minutes), {"validated_at": []}
    manager = training.TrainManager
    train_step, validate = manager._train_step, manager._validate
    manager._save_checkpoint = clock.excluding(manager._save_checkpoint)

    def _train_step(self, batch):
        out = train_step(self, batch)
        if clock.out_of_time():
            self.stats.is_max_update = True        # what `updates: N` sets: Joey stops itself
        return out

    @clock.excluding
    def _validate(self, valid_data):
        info["validated_at"].append(self.stats.steps)
        return validate(self, valid_data)

    loop = manager.train_and_validate

    def train_and_validate(self, train_data, valid_data):
        clock.start()
        loop(self, train_data, valid_data)
        info["loop_s"], info["excluded_s"] = clock.elapsed(), clock.excluded_s
        if not info["validated_at"] or info["validated_at"][-1] != self.stats.steps:
            _validate(self, valid_data)           # the dev check at the deadline
        info.update(steps=self.stats.steps, epochs=self.stats.epochs,
                    tokens=int(self.stats.total_tokens),
                    best_step=int(self.stats.best_ckpt_iter),
                    best_dev=float(self.stats.best_ckpt_score))

    manager._train_step, manager._validate = _train_step, _validate
    manager.train_and_validate = train_and_validate
    training.train(rank=0, world_size=None, cfg=cfg, skip_test=True)
    write_train_result(args.result, info, clock)


def decode(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    from joeynmt.config import load_config, parse_global_args
    from joeynmt.helpers import write_list_to_file
    from joeynmt.prediction import predict, prepare

    cfg = load_config(Path(args.config))
    parsed = parse_global_args(cfg, rank=0, mode="translate")
    model, _, _, data = prepare(parsed, rank=0, mode="translate")
    lines = Path(args.input).read_text(encoding="utf-8").rstrip("\n").split("\n")

    def translate(batch: list[str]) -> list[str]:
        for line in batch:
            data.set_item(line.rstrip())
        _, _, hyps, _, _, _ = predict(model=model, data=data, compute_loss=False,
                                      device=parsed.device, rank=0, n_gpu=parsed.n_gpu,
                                      normalization="none", num_workers=parsed.num_workers,
                                      args=parsed.test, autocast=parsed.autocast)
        data.reset_cache()
        return hyps

    if args.warmup:
        translate(lines[: args.warmup])
    hyps, seconds = timed(translate, lines)
    assert len(hyps) == len(lines), (len(hyps), len(lines))
    write_list_to_file(Path(args.output), hyps)
    write_decode_result(args.result, len(lines), seconds)


if __name__ == "__main__":
    run_mode(train, decode, decode_input=True)
