"""Subword regularization: sampled segmentations in training, one segmentation at inference."""
import pyarrow as pa
import pytest

from s2s.config import ConfigError, ExperimentConfig, TokenizerConfig, from_dict
from s2s.prediction import Translator
from s2s.subword import SampledCorpus, draw_seed, with_sampling
from s2s.training import encode_corpus
from s2s.vocabulary import learn_vocabulary

from .conftest import tiny_model

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "running", "jumped",
         "quickly", "foxes", "dogs", "brownish", "overlay", "number"]
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8)) for i in range(300)]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def setup(request):
    vocab = learn_vocabulary(TEXTS, TokenizerConfig(type=request.param, vocab_size=60))
    cfg = from_dict(ExperimentConfig, {"data": {"train": "x.tsv", "max_src_len": 80,
                                                "max_tgt_len": 80,
                                                "tokenizer": {"type": request.param,
                                                              "sampling_alpha": 0.1}}}).validate()
    table = pa.table({"src": TEXTS[:8], "tgt": TEXTS[8:16]})
    corpus = with_sampling(encode_corpus(table, vocab, vocab, 80, 80), cfg, vocab, vocab)
    return vocab, cfg, corpus


def test_training_batches_get_varied_segmentations(setup):
    vocab, _, corpus = setup
    assert isinstance(corpus, SampledCorpus)
    seen = set()
    for epoch in range(6):
        corpus.batches(4000, seed=1, epoch=epoch)
        batch = corpus.collate([0, 1, 2, 3])
        seen.add(tuple(batch.src[0].tolist()))
        # Any sampled segmentation still spells the same text (eos ends the source).
        assert vocab.decode([batch.src[0].tolist()])[0] == corpus.src_texts[0]
        assert vocab.decode([batch.tgt_out[1].tolist()])[0] == corpus.tgt_texts[1]
    assert len(seen) >= 3


def test_a_draw_repeats_for_the_same_epoch_and_batch(setup):
    _, _, corpus = setup
    corpus.batches(4000, seed=1, epoch=2)
    first = corpus.collate([4, 5]).src.tolist()
    assert corpus.collate([4, 5]).src.tolist() == first
    assert draw_seed(1, 2, [4, 5]) != draw_seed(1, 3, [4, 5])


def test_inference_always_uses_the_one_best_segmentation(setup):
    vocab, cfg, _ = setup
    translator = Translator(tiny_model(vocab=len(vocab)), vocab, vocab, cfg.testing, 80, 80)
    runs = [translator.encode_sources(TEXTS[:5]) for _ in range(4)]
    assert all(run == vocab.encode(TEXTS[:5]) for run in runs)


def test_off_by_default_and_only_for_subword_models():
    table = pa.table({"src": ["a b"], "tgt": ["b a"]})
    vocab = learn_vocabulary(["a b c"] * 5, TokenizerConfig(type="word"))
    cfg = from_dict(ExperimentConfig, {"data": {"train": "x.tsv"}}).validate()
    corpus = encode_corpus(table, vocab, vocab, 10, 10)
    assert with_sampling(corpus, cfg, vocab, vocab) is corpus
    with pytest.raises(ConfigError, match="sampling_alpha"):
        from_dict(ExperimentConfig, {"data": {"train": "x.tsv", "tokenizer": {
            "type": "word", "sampling_alpha": 0.1}}}).validate()
