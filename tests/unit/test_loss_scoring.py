import math

import pytest
import torch

from s2s.loss import sequence_loss
from s2s.scoring import bleu, chrf, rouge, task_scores
from s2s.vocabulary import PAD_ID


def test_padding_is_ignored():
    logits = torch.randn(2, 3, 6)
    targets = torch.tensor([[4, 5, PAD_ID], [4, PAD_ID, PAD_ID]])
    other = logits.clone()
    other[0, 2] = 100.0                                             # changes only padded slots
    other[1, 1:] = -100.0
    assert torch.allclose(sequence_loss(logits, targets), sequence_loss(other, targets))


def test_sum_of_negative_log_likelihoods():
    logits = torch.zeros(1, 2, 4)                                  # uniform over 4 tokens
    loss = sequence_loss(logits, torch.tensor([[1, 2]]))
    assert float(loss) == pytest.approx(2 * math.log(4))


def test_label_smoothing_raises_loss_of_confident_predictions():
    logits = torch.full((1, 1, 5), -10.0)
    logits[0, 0, 2] = 10.0
    target = torch.tensor([[2]])
    assert sequence_loss(logits, target, 0.1) > sequence_loss(logits, target, 0.0)


def test_metrics():
    refs = ["the cat sat on the mat", "a dog barked loudly"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert chrf(refs, refs) == pytest.approx(100.0)
    assert bleu(["completely different words"] * 2, refs) < 10
    scores = rouge(["the cat sat", "a dog"], refs)
    assert 0 < scores["rougeL"] < 100 and set(scores) == {"rouge1", "rouge2", "rougeL"}
    assert list(task_scores("summarization", refs, refs))[0] == "rougeL"
    assert list(task_scores("translation", refs, refs))[0] == "bleu"
    with pytest.raises(ValueError):
        task_scores("translation", refs[:1], refs)
