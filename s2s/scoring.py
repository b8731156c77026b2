"""Corpus metrics: sacreBLEU BLEU and chrF for translation, ROUGE-1/2/L for summaries."""
from __future__ import annotations

import functools
from typing import Sequence

import sacrebleu
from rouge_score import rouge_scorer


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)


def chrf(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return float(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score)


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    # Built once: construction logs a line and loads the stemmer.
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean F1 (x100) of ROUGE-1, ROUGE-2 and ROUGE-L over sentence pairs."""
    scorer = _rouge_scorer()
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs):
        for name, score in scorer.score(ref, hyp).items():
            totals[name] += score.fmeasure
    n = max(len(hyps), 1)
    return {name: 100.0 * total / n for name, total in totals.items()}


def task_scores(task: str, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """All metrics for a task; the first key is the one used for model selection."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if task == "summarization":
        scores = rouge(hyps, refs)
        return {"rougeL": scores["rougeL"], "rouge1": scores["rouge1"], "rouge2": scores["rouge2"]}
    return {"bleu": bleu(hyps, refs), "chrf": chrf(hyps, refs)}
