from s2s.config import TokenizerConfig
from s2s.vocabulary import (BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, learn_vocabularies,
                            learn_vocabulary)

TEXTS = ["the cat sat on the mat", "a dog sat on a log", "the dog and the cat"] * 20


def test_special_ids_are_fixed():
    vocab = learn_vocabulary(TEXTS, TokenizerConfig(type="bpe", vocab_size=40))
    assert vocab.pieces([PAD_ID, UNK_ID, BOS_ID, EOS_ID]) == ["<pad>", "<unk>", "<s>", "</s>"]


def test_round_trip_and_specials_stripped():
    vocab = learn_vocabulary(TEXTS, TokenizerConfig(type="unigram", vocab_size=30))
    ids = vocab.encode(["the cat sat"])[0]
    assert vocab.decode([ids])[0] == "the cat sat"
    # decoding stops at eos and skips pad/bos
    assert vocab.decode([[BOS_ID] + ids + [EOS_ID, 7, PAD_ID]])[0] == "the cat sat"


def test_shared_and_separate(tmp_path):
    src, tgt = learn_vocabularies(TEXTS, TEXTS, TokenizerConfig(type="word", vocab_size=20))
    assert src is tgt
    src, tgt = learn_vocabularies(TEXTS, ["le chat"] * 5, TokenizerConfig(type="word", shared=False))
    assert src is not tgt and len(tgt) < len(src)
    src.save(tmp_path / "v.spm")
    assert Vocabulary.load(tmp_path / "v.spm").encode(["cat"]) == src.encode(["cat"])
