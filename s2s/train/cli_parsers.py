"""`s2s train --ray ...`: adds the Ray Train options to the core `train` subcommand.

    s2s train --ray --config configs/toy-reverse.yaml --out runs/toy-ray --workers 2
    s2s train --ray --address 127.0.0.1:6379 --config configs/bible-en-fr.yaml --workers 4

Only argparse here: Ray is imported inside the handler, so `s2s translate` never pays for it.
"""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.choices["train"]
    add_ray_arguments(train)
    core_train = train.get_default("func")
    train.set_defaults(func=functools.partial(dispatch, core_train))


def add_ray_arguments(parser: argparse.ArgumentParser, ray_flag: bool = True) -> None:
    """The Ray Train options; `ray_flag=False` for entrypoints that always use Ray."""
    group = parser.add_argument_group("Ray Train (override the config's ray: section)")
    if ray_flag:
        group.add_argument("--ray", action="store_true",
                           help="train on a Ray cluster (Ray Train, DDP)")
    group.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a new "
                                         "local Ray)")
    group.add_argument("--workers", type=int, help="number of training workers")
    group.add_argument("--storage-path", help="checkpoint storage: local dir or pyarrow URI "
                                              "(default OUT/ray)")
    group.add_argument("--run-name", help="Ray Train run name (default: the config's name); "
                                          "rerunning a name resumes it")
    group.add_argument("--max-failures", type=int, help="worker-group restarts from the last "
                                                        "checkpoint (-1 = no limit)")
    group.add_argument("--data-root", help="directory (or URI) the config's relative data paths "
                                           "are read from (default: the working directory)")


RAY_ONLY = ("address", "workers", "storage_path", "run_name", "max_failures", "data_root")


def dispatch(core_train: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    if not args.ray:
        given = [f"--{name.replace('_', '-')}" for name in RAY_ONLY if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --ray")
        return core_train(args)
    return train_with_ray(args)


def train_with_ray(args: argparse.Namespace) -> int:
    from .config import load_ray_config
    from .data import with_data_root
    from .launcher import train_on_ray

    cfg, ray_cfg = load_ray_config(args.config)
    cfg = with_data_root(cfg, args.data_root)
    ray_cfg = ray_cfg.override(workers=args.workers, storage_path=args.storage_path,
                               run_name=args.run_name, max_failures=args.max_failures)
    summary = train_on_ray(cfg, ray_cfg, args.out or f"runs/{cfg.name}", args.address)
    print(f"s2s-train: done: best dev score {summary['best_score']:.2f} after "
          f"{summary['steps']} steps ({summary['epochs']} epochs); model: {summary['best']}; "
          f"checkpoints: {summary['storage']}", file=sys.stdout, flush=True)
    return 0
