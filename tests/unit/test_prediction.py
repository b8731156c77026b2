import logging

from s2s.prediction import Translator


def test_order_kept_and_empty_inputs(toy_model):
    translator = Translator.from_checkpoint(toy_model.model_dir, device="cpu")
    texts = ["1 2 3", "", "a b c d e f", "   ", "9 8"]
    out = translator.best(texts, beam=3)
    assert out == ["3 2 1", "", "f e d c b a", "", "8 9"]


def test_long_input_truncated_with_warning(toy_model, caplog):
    translator = Translator.from_checkpoint(toy_model.model_dir, device="cpu")
    long_text = " ".join(["1"] * 40)
    with caplog.at_level(logging.WARNING):
        out = translator.translate([long_text], beam=2, n_best=2)
    assert "truncated" in caplog.text
    assert len(out[0]) == 2 and out[0][0].score >= out[0][1].score


def test_max_len_caps_output(toy_model):
    translator = Translator.from_checkpoint(toy_model.model_dir, device="cpu")
    assert len(translator.best(["1 2 3 4 5 6 7 8"], max_len=3)[0].split()) <= 3
