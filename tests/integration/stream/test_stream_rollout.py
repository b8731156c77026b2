"""Day-two operations on a running stream (real Kafka + Ray Serve): a new checkpoint rolled out
mid-stream, a checkpoint that cannot load refused while the old one keeps serving, and a canary
that gets a stable share of the keys."""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from s2s.checkpoint import MANIFEST
from s2s.stream.app import CheckpointRefused
from s2s.stream.headers import MODEL_VERSION, SOURCE_OFFSET, SOURCE_PARTITION

from .streams import StreamApp, by_key, header, keyed, produce, produce_in_background, read_answers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def model_copy(model: Path, where: Path, version: str) -> Path:
    """The same weights under another version: the headers tell who answered."""
    copy = where / version
    shutil.copytree(model, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "version": version}))
    return copy


def versions_in_source_order(answers) -> dict[str, list[str]]:
    """Per input partition, the model version of each answer in input-offset order."""
    seen: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for record in answers:
        seen[header(record, SOURCE_PARTITION)].append((int(header(record, SOURCE_OFFSET)),
                                                        header(record, MODEL_VERSION)))
    return {partition: [v for _, v in sorted(items)] for partition, items in seen.items()}


def test_a_new_checkpoint_rolls_out_mid_stream_exactly_once_and_monotone(stream_app, toy_model, tmp_path):
    model_a, model_b = model_copy(toy_model, tmp_path, "A"), model_copy(toy_model, tmp_path, "B")
    app = stream_app(model_a, delivery="exactly_once")
    load = keyed(600, "roll")
    producer = produce_in_background(app.bootstrap, app.topics["in"], load, pace_per_s=40)
    assert wait_for(lambda: sum(s["answered"] for s in app.stats()) >= 100, timeout_s=120)
    StreamApp.start(app.name, app.bootstrap, app.topics, str(model_b), delivery="exactly_once")
    producer.join(timeout=120)
    assert not producer.errors
    keys = {key for key, _ in load}
    answers = read_answers(app.bootstrap, app.topics["out"], keys, timeout_s=180, read_committed=True)
    assert {key: len(records) for key, records in by_key(answers).items()} == dict.fromkeys(keys, 1)
    for partition, versions in versions_in_source_order(answers).items():
        switch = versions.index("B") if "B" in versions else len(versions)
        assert set(versions[:switch]) <= {"A"} and set(versions[switch:]) <= {"B"}, partition
    assert {header(r, MODEL_VERSION) for r in answers} == {"A", "B"}


def test_a_checkpoint_that_fails_to_load_is_refused_and_the_old_model_keeps_answering(
        stream_app, toy_model, tmp_path):
    model_a = model_copy(toy_model, tmp_path, "A")
    broken = model_copy(toy_model, tmp_path, "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    app = stream_app(model_a)
    with pytest.raises(CheckpointRefused, match=str(broken)):
        StreamApp.start(app.name, app.bootstrap, app.topics, str(broken))
    load = keyed(50, "after")
    produce(app.bootstrap, app.topics["in"], load)
    answers = read_answers(app.bootstrap, app.topics["out"], {k for k, _ in load}, timeout_s=120)
    assert {header(r, MODEL_VERSION) for r in answers} == {"A"}
    assert {r.key for r in answers} == {k for k, _ in load}


def test_a_canary_gets_its_share_of_the_keys_and_a_key_always_meets_one_model(stream_app, toy_model, tmp_path):
    model_a, model_b = model_copy(toy_model, tmp_path, "A"), model_copy(toy_model, tmp_path, "B")
    app = stream_app(model_a, route={"canary": {"model": str(model_b), "percent": 10}})
    keys = [f"user-{i}".encode() for i in range(2000)]
    load = [(key, b"1 2 3") for key in keys] + [(key, b"a b c") for key in keys[:500]]
    produce(app.bootstrap, app.topics["in"], load)
    answers = read_answers(app.bootstrap, app.topics["out"], set(keys), timeout_s=240)
    models = {key: {header(r, MODEL_VERSION) for r in records} for key, records in by_key(answers).items()}
    assert len(models) == 2000 and all(len(versions) == 1 for versions in models.values())
    share = sum(versions == {"B"} for versions in models.values()) / len(models)
    assert 0.07 <= share <= 0.13, share
