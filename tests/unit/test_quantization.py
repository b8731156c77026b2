"""int8 checkpoints: what `s2s quantize` writes, how it loads, and how close it decodes to fp32."""
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

from s2s import cli
from s2s.checkpoint import (MANIFEST, TRAINER_STATE, WEIGHTS, CheckpointError, load_checkpoint,
                            quantize_checkpoint, read_manifest, save_checkpoint)
from s2s.config import ExperimentConfig, TokenizerConfig
from s2s.corpus import read_corpus
from s2s.prediction import Translator
from s2s.quantization import check_quantization, is_quantized, quantize_model
from s2s.search import search
from s2s.vocabulary import learn_vocabulary

from .conftest import random_batch, tiny_model, tiny_model_config


@pytest.fixture
def fp32_dir(tmp_path):
    vocab = learn_vocabulary(["a b c d e f g h i"] * 3, TokenizerConfig(type="word"))
    cfg = ExperimentConfig(name="tiny").replace(model=tiny_model_config(input_feeding=True))
    state = {"progress": {"step": 7}}
    return save_checkpoint(tmp_path / "fp32", tiny_model(vocab=len(vocab), input_feeding=True),
                           vocab, vocab, cfg, {"bleu": 1.5}, state)


@pytest.fixture
def int8_dir(fp32_dir):
    return quantize_checkpoint(fp32_dir, fp32_dir.parent / "int8")


def test_the_manifest_says_int8_and_the_weights_stay_safetensors(fp32_dir, int8_dir):
    manifest, source = read_manifest(int8_dir), read_manifest(fp32_dir)
    assert manifest["quantization"] == "int8" and "quantization" not in source
    assert manifest["version"] == source["version"] and manifest["metrics"] == {"bleu": 1.5}
    assert not (int8_dir / TRAINER_STATE).exists()        # for decoding, not for resuming
    fp32, int8 = load_file(fp32_dir / WEIGHTS), load_file(int8_dir / WEIGHTS)
    assert fp32.keys() == int8.keys() and all(torch.equal(fp32[k], int8[k]) for k in fp32)


def test_an_int8_checkpoint_loads_quantized_through_the_one_loader(int8_dir):
    loaded = load_checkpoint(int8_dir)
    assert is_quantized(loaded.model) and loaded.quantization == "int8"
    dynamic = torch.ao.nn.quantized.dynamic
    assert isinstance(loaded.model.decoder.rnn, dynamic.LSTM)
    assert all(isinstance(m, dynamic.LSTM) for m in loaded.model.encoder.forward_rnns)
    assert isinstance(loaded.model.output, dynamic.Linear)
    assert isinstance(loaded.model.decoder.bridge, dynamic.Linear)
    assert loaded.version.endswith("-int8")


def test_quantize_on_load_gives_the_same_model_as_the_int8_checkpoint(fp32_dir, int8_dir):
    """Quantization is deterministic: a Serve route's `quantize: int8` equals `s2s quantize`."""
    on_load, stored = load_checkpoint(fp32_dir, quantize="int8"), load_checkpoint(int8_dir)
    vocab = len(stored.src_vocab)
    src, lengths = random_batch(vocab=vocab)
    tgt = torch.randint(4, vocab, (4, 3))
    assert torch.equal(on_load.model(src, lengths, tgt), stored.model(src, lengths, tgt))
    assert on_load.version == stored.version
    assert not is_quantized(load_checkpoint(fp32_dir).model)


def test_int8_is_cpu_only_and_auto_picks_the_cpu(int8_dir, fp32_dir):
    with pytest.raises(CheckpointError, match="CPU only"):
        load_checkpoint(int8_dir, "cuda")
    with pytest.raises(CheckpointError, match="CPU only"):
        load_checkpoint(fp32_dir, "cuda", quantize="int8")
    assert Translator.from_checkpoint(int8_dir, device="auto").device.type == "cpu"
    assert Translator.from_checkpoint(fp32_dir, "auto", quantize="int8").device.type == "cpu"


def test_unknown_quantizations_are_refused(fp32_dir, int8_dir):
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        load_checkpoint(fp32_dir, quantize="int4")
    with pytest.raises(ValueError, match=r"routes\[x\].quantize"):
        check_quantization("fp8", "routes[x].quantize")
    manifest = json.loads((int8_dir / MANIFEST).read_text())
    (int8_dir / MANIFEST).write_text(json.dumps({**manifest, "quantization": "int4"}))
    with pytest.raises(CheckpointError, match="quantized as 'int4'"):
        load_checkpoint(int8_dir)


class Payload:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_loading_int8_is_as_safe_as_fp32(int8_dir, capsys):
    """A pickle where the weights belong is refused, never run; so is a tampered manifest."""
    (int8_dir / WEIGHTS).write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(CheckpointError, match="cannot load weights"):
        load_checkpoint(int8_dir)
    assert "pickle code ran" not in capsys.readouterr().out
    manifest = json.loads((int8_dir / MANIFEST).read_text())
    (int8_dir / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(int8_dir)
    (int8_dir / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt manifest"):
        load_checkpoint(int8_dir)


def test_quantize_refuses_its_own_output_and_the_source_dir(fp32_dir, int8_dir):
    with pytest.raises(CheckpointError, match="already quantized"):
        quantize_checkpoint(int8_dir, int8_dir.parent / "again")
    with pytest.raises(CheckpointError, match="must differ"):
        quantize_checkpoint(fp32_dir, fp32_dir)


@pytest.mark.parametrize("options", [{"rnn": "gru"}, {"attention": "bahdanau"}, {"coverage": True},
                                     {"copy_attention": True, "input_feeding": True}],
                         ids=["gru", "bahdanau", "coverage", "copy+feeding"])
def test_every_model_variant_quantizes_and_scores_close_to_fp32(options):
    src, lengths = random_batch()
    tgt = torch.randint(4, 13, (4, 3))
    with torch.no_grad():
        fp32 = tiny_model(**options)(src, lengths, tgt)
        int8 = quantize_model(tiny_model(**options))
        assert is_quantized(int8)
        assert torch.allclose(int8(src, lengths, tgt), fp32, atol=0.01)
        assert len(search(int8, int8.encode(src, lengths), torch.full((4,), 5), beam=3)) == 4


def _agreement(a, b) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def test_int8_decodes_the_toy_task_like_fp32(toy_model):
    """Measured on a toy reverse model trained like the session's (200 test sentences): int8
    gave fp32's output for 100% of them greedy and 99.5% with beam 5, and matched the
    references as often (98.5% vs 98.5%, 99.0% vs 98.5%). The bars leave room for other runs."""
    texts = read_corpus(toy_model.data_dir / "test.parquet").column("src").to_pylist()
    refs = read_corpus(toy_model.data_dir / "test.parquet").column("tgt").to_pylist()
    fp32 = Translator.from_checkpoint(toy_model.model_dir, device="cpu")
    int8 = Translator.from_checkpoint(toy_model.model_dir, device="cpu", quantize="int8")
    assert is_quantized(int8.model) and not is_quantized(fp32.model)
    for beam in (1, 5):
        fp32_out, int8_out = fp32.best(texts, beam=beam), int8.best(texts, beam=beam)
        assert _agreement(fp32_out, int8_out) >= 0.95, beam
        assert _agreement(int8_out, refs) >= _agreement(fp32_out, refs) - 0.03, beam


def test_s2s_quantize_then_translate_and_evaluate(toy_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "int8"
    assert cli.main(["quantize", "--model", str(toy_model.model_dir), "--out", str(out)]) == 0
    assert read_manifest(out)["quantization"] == "int8"
    test = toy_model.data_dir / "test.parquet"
    assert cli.main(["evaluate", "--model", str(out), "--test", str(test), "--limit", "50",
                     "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["sentences"] == 50 and scores["exact_match"] >= 80
    source = read_corpus(test).column("src").to_pylist()[0]
    (tmp_path / "in.txt").write_text(source + "\n")
    assert cli.main(["translate", "--model", str(out), "--input", str(tmp_path / "in.txt")]) == 0
    assert capsys.readouterr().out.strip() == Translator.from_checkpoint(out).best([source])[0]


# --- a Serve route's `quantize: int8` ---------------------------------------------------------

def _route(**overrides):
    from s2s.stream.config import stream_config_from_dict
    base = {"name": "en-fr", "input_topic": "en", "output_topic": "fr", "model": "m"}
    return stream_config_from_dict({"routes": [{**base, **overrides}]}).routes[0]


def test_a_route_may_ask_for_int8_and_nothing_else():
    from s2s.stream.config import StreamConfigError
    assert _route().quantize is None and _route(quantize="int8").quantize == "int8"
    with pytest.raises(StreamConfigError, match=r"routes\[en-fr\]\.quantize must be int8"):
        _route(quantize="int4")
    with pytest.raises(StreamConfigError, match=r"routes\[en-fr\]\.quantize: int8 decodes on CPU"):
        _route(quantize="int8", device="cuda")


def test_the_route_loader_gets_quantize_only_when_the_route_sets_it(fp32_dir):
    from s2s.stream.models import load_checkpoint_model, load_route_model
    calls = []
    loader = lambda *args, **kwargs: calls.append((args, kwargs))  # noqa: E731
    load_route_model(loader, _route())
    load_route_model(loader, _route(quantize="int8"))
    assert calls == [(("m", "auto"), {}), (("m", "auto"), {"quantize": "int8"})]
    route = _route(quantize="int8").replace(model=str(fp32_dir))
    model = load_route_model(load_checkpoint_model, route)
    assert is_quantized(model.model) and model.version.endswith("-int8")
    fp32_route = route.replace(quantize=None)
    assert not is_quantized(load_route_model(load_checkpoint_model, fp32_route).model)
