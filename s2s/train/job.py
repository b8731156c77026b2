"""What the driver hands every worker, and the trainer state a Ray checkpoint carries. No Ray here.

The driver learns the vocabulary and reads the dev set once; workers get both inside the
train loop config (plain dicts, bytes and lists), so no worker needs the driver's files:
on a real cluster the data and config paths are not there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch

from ..config import ExperimentConfig, from_dict
from ..vocabulary import Vocabulary
from .config import RayTrainConfig
from .sharding import array_to_ids, ids_to_array


@dataclass
class TrainJob:
    experiment: ExperimentConfig
    ray: RayTrainConfig
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary           # the same object as src_vocab when shared
    dev_src: list[str]
    dev_tgt: list[str]

    def to_loop_config(self) -> dict[str, Any]:
        shared = self.src_vocab is self.tgt_vocab
        return {"experiment": self.experiment.to_dict(), "ray": self.ray.to_dict(),
                "src_vocab": self.src_vocab.model_proto,
                "tgt_vocab": None if shared else self.tgt_vocab.model_proto,
                "dev_src": list(self.dev_src), "dev_tgt": list(self.dev_tgt)}

    @classmethod
    def from_loop_config(cls, config: dict[str, Any]) -> "TrainJob":
        src_vocab = Vocabulary(config["src_vocab"])
        tgt_vocab = src_vocab if config["tgt_vocab"] is None else Vocabulary(config["tgt_vocab"])
        return cls(from_dict(ExperimentConfig, config["experiment"]).validate(),
                   from_dict(RayTrainConfig, config["ray"]).validate(),
                   src_vocab, tgt_vocab, list(config["dev_src"]), list(config["dev_tgt"]))

    def dev_table(self) -> pa.Table:
        return pa.table({"src": self.dev_src, "tgt": self.dev_tgt})


@dataclass
class Restored:
    """What a worker takes back from a checkpoint's trainer state."""
    trainer: dict[str, Any]         # train_loop.trainer_state: optimizer, schedule, progress
    seen: set[int]                  # example ids already trained on in the progress' epoch
    rng: dict[str, Any] | None      # this rank's RNG; None when the world size changed


def pack_state(trainer: dict[str, Any], seen: set[int],
               rng_states: list[dict[str, Any]]) -> dict[str, Any]:
    """A Ray checkpoint's trainer state: the loop's (`train_loop.trainer_state`), the epoch's
    covered example ids and every rank's RNG; tensors, numbers, lists and dicts only, so it
    loads with torch.load(weights_only=True)."""
    return {**trainer, "seen": torch.from_numpy(ids_to_array(sorted(seen))),
            "rng": rng_states, "world_size": len(rng_states)}


def unpack_state(state: dict[str, Any], rank: int, world_size: int) -> Restored:
    # RNG streams are per rank; with a different number of workers there is no
    # meaningful mapping, so they are re-seeded instead.
    same_world = int(state["world_size"]) == world_size
    trainer = {k: v for k, v in state.items() if k not in ("seen", "rng", "world_size")}
    return Restored(trainer, array_to_ids(state["seen"].numpy()),
                    state["rng"][rank] if same_world else None)


def epoch_seen_after(seen: set[int], new_ids: list[list[int]]) -> set[int]:
    """The epoch's seen set after a report: old ids plus what every rank trained since."""
    merged = set(seen)
    for ids in new_ids:
        merged.update(ids)
    return merged
