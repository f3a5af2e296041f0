"""The evaluation's grading and its split of scene questions by how many groups of objects the scene holds."""
from __future__ import annotations

from train.evaluate import is_correct, names_another_group, scene_size
from train.world.dataset import make_sample


def test_an_answer_is_right_when_an_accepted_answer_appears_as_whole_words():
    assert is_correct("The cube is red.", ["red"])
    assert not is_correct("reddish", ["red"])
    assert is_correct("two large squares", ["2", "two"])


def test_scene_size_counts_the_groups_of_pictures_and_3d_scenes_only(tmp_path):
    sizes = set()
    for index in range(12):
        record = make_sample(str(tmp_path), "test", "image", 0, index)
        expected = "one group" if len(record.properties["groups"]) == 1 else "several groups"
        assert scene_size(record.properties) == expected
        sizes.add(expected)
    assert sizes == {"one group", "several groups"}
    scene = make_sample(str(tmp_path), "test", "points", 0, 0).properties
    assert scene_size(scene) == ("one group" if len(scene["objects"]) == 1 else "several groups")
    assert scene_size({"kind": "siren", "pitch": "high"}) is None
    assert scene_size({"motion": "left", "objects": [{"role": "moving"}, {"role": "still"}]}) is None


def test_a_wrong_answer_naming_the_other_groups_colour_is_told_apart_from_a_colour_no_group_has():
    scene = {"groups": [{"name": "square", "colour": "red", "size": "small"},
                        {"name": "circle", "colour": "blue", "size": "large"}]}
    assert names_another_group("blue", "colour", ["red"], scene)
    assert not names_another_group("green", "colour", ["red"], scene)
    assert not names_another_group("red", "colour", ["red"], scene)
    assert names_another_group("They are large.", "size", ["small"], scene)
    assert not names_another_group("two", "count", ["2"], {"groups": [{"colour": "red"}]})


def test_a_cmaa_trained_on_another_bridge_is_refused(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    import pytest

    from core.checkpoints import save_checkpoint
    from core.cmaa import CrossModalAlignmentAttention
    from train import evaluate as evaluate_module

    width = 32
    bridge = tmp_path / "image.safetensors"
    bridge.write_bytes(b"the bridge being evaluated")
    cmaa = CrossModalAlignmentAttention(width, 8)
    save_checkpoint(cmaa, tmp_path / "image_cmaa.safetensors", {**cmaa.config(), "bridge_sha256": "0" * 64})

    llm = SimpleNamespace(width=width)
    features = tmp_path / "features.safetensors"
    monkeypatch.setattr("train.features.load_features", lambda path: (None, None, [{}]))
    monkeypatch.setattr("train.train_qformer.load_instructions", lambda path, n: [])
    monkeypatch.setattr("core.model.ModalityBridge.load_trained", lambda self, path: {})
    (tmp_path / "image.json").write_text(json.dumps({"qformer": {"encoder_width": 16}}))
    with pytest.raises(ValueError, match="was trained on another image.safetensors"):
        evaluate_module.evaluate("image", bridge, features, tmp_path / "i.jsonl", llm=llm, qformer_tokenizer=object(),
                                 cmaa=tmp_path / "image_cmaa.safetensors")


def test_a_bridge_of_another_modality_or_without_the_projection_asked_for_is_refused(tmp_path):
    import json

    import pytest

    from train.evaluate import bridge_config

    checkpoint = tmp_path / "points.safetensors"
    with pytest.raises(FileNotFoundError, match="train the bridge first"):
        bridge_config(checkpoint, "points", "qformer")
    checkpoint.write_bytes(b"weights")
    checkpoint.with_suffix(".json").write_text(json.dumps({"modality": "points", "trained": {"qformer": {}}}))
    assert bridge_config(checkpoint, "points", "qformer")["modality"] == "points"
    with pytest.raises(ValueError, match="is a bridge for points, not image"):
        bridge_config(checkpoint, "image", "qformer")
    with pytest.raises(ValueError, match="holds no trained linear projection \\(it has qformer\\)"):
        bridge_config(checkpoint, "points", "linear")


def test_asking_for_a_task_the_instructions_lack_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    import json

    import pytest

    from train import evaluate as evaluate_module

    checkpoint = tmp_path / "image.safetensors"
    checkpoint.write_bytes(b"weights")
    checkpoint.with_suffix(".json").write_text(json.dumps({"modality": "image", "trained": {"qformer": {}}}))
    monkeypatch.setattr("train.features.load_features", lambda path: (None, None, [{}]))
    monkeypatch.setattr("train.train_qformer.load_instructions",
                        lambda path, n: [{"sample": 0, "task": "colour"}, {"sample": 0, "task": "caption"}])
    with pytest.raises(ValueError, match="has no color questions; its tasks are caption, colour"):
        evaluate_module.evaluate("image", checkpoint, tmp_path / "f.safetensors", tmp_path / "i.jsonl",
                                 tasks=["color"], llm=object())


def test_features_of_another_modality_are_refused_before_the_model_loads(tmp_path, monkeypatch):
    import json

    import pytest

    from train import evaluate as evaluate_module

    checkpoint = tmp_path / "image.safetensors"
    checkpoint.write_bytes(b"weights")
    checkpoint.with_suffix(".json").write_text(json.dumps({"modality": "image", "trained": {"qformer": {}}}))
    monkeypatch.setattr("train.features.load_features", lambda path: (None, None, [{"modality": "points"}]))
    with pytest.raises(ValueError, match="holds points features, not image ones"):
        evaluate_module.evaluate("image", checkpoint, tmp_path / "points.safetensors", tmp_path / "i.jsonl",
                                 llm=object())
