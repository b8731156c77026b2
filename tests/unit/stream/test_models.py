"""Batch decoding with per-text failure isolation; loaders."""
import pytest

from s2s.stream.models import (DecodeItem, IdentityModel, answer_lists, decode_items, load_identity_model,
                               resolve_loader)


class Upper:
    """Upper-cases; raises on any batch that holds the text 'boom'."""

    name, version = "upper", "1"

    def __init__(self):
        self.calls = []

    def best(self, texts, beam=None, max_len=None):
        self.calls.append((list(texts), beam, max_len))
        if "boom" in texts:
            raise RuntimeError("kaput")
        return [t.upper() for t in texts]


def test_items_with_the_same_settings_share_one_call():
    model = Upper()
    items = [DecodeItem("a"), DecodeItem("b", beam=2), DecodeItem("c"), DecodeItem("d", beam=2)]
    outcomes = decode_items(model, items)
    assert [o.text for o in outcomes] == ["A", "B", "C", "D"]
    assert sorted(model.calls) == sorted([(["a", "c"], None, None), (["b", "d"], 2, None)])


def test_a_failing_text_fails_alone():
    outcomes = decode_items(Upper(), [DecodeItem("a"), DecodeItem("boom"), DecodeItem("c")])
    assert [o.text for o in outcomes] == ["A", None, "C"]
    assert outcomes[1].error == "RuntimeError: kaput"


def test_one_failing_text_among_many_is_found_by_bisection_not_one_call_per_text():
    model = Upper()
    texts = [f"t{i}" for i in range(255)] + ["boom"]
    outcomes = decode_items(model, [DecodeItem(t) for t in texts])
    assert [o.text for o in outcomes] == [t.upper() for t in texts[:-1]] + [None]
    assert len(model.calls) == 1 + 2 * 8  # the batch, then two halves at each of log2(256) levels


def test_every_text_failing_is_each_dead_lettered():
    outcomes = decode_items(Upper(), [DecodeItem("boom") for _ in range(5)])
    assert [o.error for o in outcomes] == ["RuntimeError: kaput"] * 5


def test_resolve_loader():
    assert resolve_loader("s2s.stream.models:load_identity_model") is load_identity_model
    assert resolve_loader(load_identity_model) is load_identity_model
    with pytest.raises(ValueError, match="cannot import"):
        resolve_loader("s2s.stream.models:nothing_here")
    with pytest.raises(ValueError, match="not callable"):
        resolve_loader("s2s.stream.models:log")


def test_identity_model():
    model = load_identity_model("ident")
    assert isinstance(model, IdentityModel) and model.name == "ident"
    assert model.best(["x y"], beam=3) == ["x y"]


def test_answer_lists_decodes_all_lists_in_one_batch_and_splits_them_back():
    model = Upper()
    lists = [[DecodeItem("a"), DecodeItem("b")], [DecodeItem("c")], []]
    results = answer_lists(model, lists)
    assert [[o.text for o in r.outcomes] for r in results] == [["A", "B"], ["C"], []]
    assert model.calls == [(["a", "b", "c"], None, None)]
    assert (results[0].model_name, results[0].model_version) == ("upper", "1")



def test_results_and_item_lists_survive_pickling_as_columns():
    # Ray pickles every call's items and result (with cloudpickle); both travel as columns.
    import pickle

    from ray import cloudpickle

    from s2s.stream.models import Decoded, DecodeList, TranslateResult

    result = TranslateResult("m", "v1", [Decoded(text="a"), Decoded(error="boom"), Decoded(text="", error="e"),
                                         Decoded()])
    items = DecodeList([DecodeItem("t", beam=3), DecodeItem("u", max_len=7), DecodeItem("w")])
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(result)) == result
        unpickled = pickle.loads(dumps(items))
        assert unpickled == list(items) and type(unpickled) is list
        assert pickle.loads(dumps(DecodeItem("x", 2, 9))) == DecodeItem("x", 2, 9)
