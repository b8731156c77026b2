"""Shared by the runners (run by each tool's own Python, so stdlib + torch only).

The budget and the training-speed measurement are the same for every tool, and the same as
s2s's own (s2s/train_loop.py): the wall clock starts when the tool's training loop starts
(after data loading, vocabulary and model building) and the budget is checked after every
update; "training seconds" are the loop's wall time minus what it spent in dev evaluation
and in writing checkpoints; tokens are the target tokens (with eos, without padding) of the
batches trained on, as each tool counts them.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable


class Clock:
    def __init__(self, minutes: float):
        self.budget_s = minutes * 60
        self.started: float | None = None
        self.excluded_s = 0.0           # dev evaluation and checkpoint writing
        self._depth = 0
        self.deadline_hit = False

    def start(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        if self.started is not None and self.budget_s > 0 and self.elapsed() >= self.budget_s:
            self.deadline_hit = True
        return self.deadline_hit

    def excluding(self, fn: Callable) -> Callable:
        """`fn`'s time is not training time (nested excluded calls count once)."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.excluded_s += time.perf_counter() - began
                self._depth -= 1
        return wrapper


def set_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(payload, indent=2))
    print(f"runner result: {path}", file=sys.stderr, flush=True)


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - began


def run_mode(train, decode, decode_input: bool = False) -> None:
    """A runner's command line: `train` or `decode` with the options every runner shares
    (``decode_input``: decode reads its sentences from --input)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["train", "decode"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=0.0)
    if decode_input:
        parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args()
    started = time.time()
    (train if args.mode == "train" else decode)(args)
    print(f"{args.mode} done in {time.time() - started:.0f} s", flush=True)


def write_train_result(path: str, info: dict[str, Any], clock: Clock) -> None:
    """What a training run reports: `info` (loop_s, excluded_s, tokens, ...) plus the training
    seconds and tokens/s measured the same way for every tool."""
    train_s = info["loop_s"] - info["excluded_s"]
    write_json(path, {**info, "train_s": train_s, "deadline_hit": clock.deadline_hit,
                      "tokens_per_s": info["tokens"] / max(train_s, 1e-9), "budget_s": clock.budget_s})


def write_decode_result(path: str, sentences: int, seconds: float, **extra: Any) -> None:
    write_json(path, {"sentences": sentences, "decode_s": seconds,
                      "sentences_per_s": sentences / seconds, **extra})
