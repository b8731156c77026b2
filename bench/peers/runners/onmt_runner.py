"""OpenNMT-py 3.5 under the side-by-side budget; run by the OpenNMT virtualenv's Python.

    python onmt_runner.py train  --config C.yaml --minutes M --threads T --result R.json
    python onmt_runner.py decode --config T.yaml --output HYP --warmup N
                                 --threads T --result R.json

train: what `onmt_train -config C.yaml` does (onmt.bin.train.main), with hooks on its
Trainer and nothing else changed. OpenNMT-py has no time limit: the batches its training
loop reads pass through a wrapper that stops handing them out once the budget is spent
(checked after each update), so the loop ends as at `train_steps` and writes its final
checkpoint. Dev checks (Trainer.validate) and checkpoint writing (ModelSaverBase.save) are
timed so that training seconds exclude them, as s2s's do; tokens are its own n_words.

decode: what `onmt_translate -config T.yaml` does (InferenceEnginePY, infer_file), with
model loading off the clock and N lines decoded first (infer_list), untimed, as a warm-up.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from budget import Clock, run_mode, set_threads, timed, write_decode_result, write_train_result


def train(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    import onmt.bin.train
    from onmt import trainer as trainer_module
    from onmt.models import model_saver

    clock, info = Clock(args.minutes), {"validations": 0}
    trainer_cls = trainer_module.Trainer
    loop, validate = trainer_cls.train, trainer_cls.validate
    model_saver.ModelSaverBase.save = clock.excluding(model_saver.ModelSaverBase.save)

    @clock.excluding
    def _validate(self, *a, **kw):
        info["validations"] += 1
        return validate(self, *a, **kw)

    def budgeted(batches):
        for item in batches:
            yield item
            if clock.out_of_time():        # back here once the update on `item` is done
                return

    def _train(self, train_iter, train_steps, *a, **kw):
        clock.start()
        stats = loop(self, budgeted(train_iter), train_steps, *a, **kw)
        info.update(loop_s=clock.elapsed(), excluded_s=clock.excluded_s,
                    steps=self.optim.training_step - 1, tokens=int(stats.n_words))
        return stats

    trainer_cls.train, trainer_cls.validate = _train, _validate
    sys.argv = ["onmt_train", "-config", args.config]
    onmt.bin.train.main()
    write_train_result(args.result, info, clock)


def decode(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    from onmt.bin.translate import _get_parser
    from onmt.inference_engine import InferenceEnginePY
    from onmt.utils.misc import set_random_seed, use_gpu
    from onmt.utils.parse import ArgumentParser

    opt = _get_parser().parse_args(["-config", args.config])
    ArgumentParser.validate_translate_opts(opt)
    ArgumentParser._get_all_transform_translate(opt)
    ArgumentParser._validate_transforms_opts(opt)
    ArgumentParser.validate_translate_opts_dynamic(opt)
    set_random_seed(opt.seed, use_gpu(opt))
    engine = InferenceEnginePY(opt)
    lines = Path(opt.src).read_text(encoding="utf-8").rstrip("\n").split("\n")
    if args.warmup:
        engine.infer_list(lines[: args.warmup])
    (_, preds), seconds = timed(engine.infer_file)
    engine.terminate()
    assert len(preds) == len(lines), (len(preds), len(lines))
    Path(args.output).write_text("".join(p[0] + "\n" for p in preds), encoding="utf-8")
    write_decode_result(args.result, len(lines), seconds)


if __name__ == "__main__":
    run_mode(train, decode)
