"""What a model does, in one word used everywhere: corpus meta.json, `data.task`, the checkpoint
manifest, a stream route's `task` and the envelope's `task`.

    translation    scored with BLEU and chrF (sacreBLEU)
    summarization  scored with ROUGE-1/2/L

Before this vocabulary was fixed, configs and manifests said `translate`/`summarize`; those
spellings are still read (old checkpoints and records already in topics carry them) and mean
the same task. `Task` is the config field type that does so (`data.task`, a route's `task`).
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from .settings import one_of

TASKS = ("translation", "summarization")
LEGACY_NAMES = {"translate": "translation", "summarize": "summarization"}


def canonical_task(name: str) -> str:
    """`name` in the current vocabulary; names outside it pass through unchanged, so the
    caller's validation can name the allowed values."""
    return LEGACY_NAMES.get(name, name)


# A config field naming a task (`data.task`, a route's `task`): an old spelling reads as its
# current name, anything else outside TASKS is an error that lists them.
Task = Annotated[str, AfterValidator(canonical_task), one_of(TASKS)]
