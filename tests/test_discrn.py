"""DisCRn-tiny: balanced, unambiguous pairs; the reference files read unchanged; the answer metric."""
from __future__ import annotations

import json
import os
import re
from collections import Counter

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from train.discrn import (PAIR_KINDS, QUESTION_TYPES, DisCRnPair, answer_choice, generate_discrn, is_correct,
                          main, make_pairs, read_discrn, score)
from train.world.dataset import GENERATORS, SCENE_STREAM, generate_world, sample_rng, sample_seed
from train.world.records import SampleRecord
from train.world.vocabulary import SHAPES, SOUND_SETTINGS


def pool(modality: str, size: int = 200) -> list[SampleRecord]:
    """Test-split records without media: DisCRn reads only records."""
    records = []
    for index in range(size):
        properties = GENERATORS[modality].sample_scene(sample_rng(0, modality, sample_seed("test", index),
                                                                  SCENE_STREAM))
        records.append(SampleRecord(f"test-{modality}-{index:06d}", modality, f"{index}.bin", "caption",
                                    ["caption"], properties, "test"))
    return records


def place(modality: str, properties: dict):
    if modality == "audio":
        return SOUND_SETTINGS.get(properties["kind"])
    places = {SHAPES[o["shape"]].setting for o in properties["objects"]} - {None}
    return places.pop() if len(places) == 1 else None


def right_answer(pair) -> int:
    """The label recomputed from the two properties records, failing if the question is ambiguous."""
    (ma, a), (mb, b) = zip(pair.modalities, pair.properties)
    q = pair.question
    if "objects?" in q:
        assert a["count"] != b["count"]
        more = int(b["count"] > a["count"])
        return more if "more" in q else 1 - more
    if "found" in q:
        wanted = q.split()[-1].rstrip("?")
        places = (place(ma, a), place(mb, b))
        assert set(places) == {"outdoors", "indoors"}, places
        return places.index(wanted)
    if "faster" in q or "slower" in q:
        paces = (a["tempo"], b["speed"])
        assert set(paces) == {"fast", "slow"}
        return paces.index("fast" if "faster" in q else "slow")
    colour = re.fullmatch(r"Which one has an? (\w+) object\?", q)
    if colour:
        has = [colour.group(1) in {o["colour"] for o in p["objects"]} for p in (a, b)]
        assert has.count(True) == 1
        return has.index(True)
    shape = re.fullmatch(r"Which one shows an? (\w+)\?", q).group(1)
    has = [shape in {o["shape"] for o in p["objects"]} for p in (a, b)]
    assert has.count(True) == 1
    return has.index(True)


@pytest.mark.parametrize("kind", PAIR_KINDS)
def test_pairs_are_balanced_distinct_and_answered_by_the_records(kind):
    pairs = make_pairs(pool(kind[0]), pool(kind[1]), 1000, np.random.default_rng(0))
    assert len(pairs) == 1000
    assert Counter(p.label for p in pairs) == {0: 500, 1: 500}
    per_type = Counter((p.question_type, p.label) for p in pairs)
    for name in QUESTION_TYPES[kind]:
        assert abs(per_type[(name, 0)] - per_type[(name, 1)]) <= 1 and per_type[(name, 0)] > 0
    assert len({(*p.sample_ids, p.question) for p in pairs}) == len(pairs)
    for pair in pairs:
        assert pair.modalities == list(kind)
        assert [s.split("-")[1] for s in pair.sample_ids] == list(kind)
        assert right_answer(pair) == pair.label, (pair.question, pair.properties)


def test_too_small_a_split_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        make_pairs(pool("points", 3), pool("image", 3), 50, np.random.default_rng(0), max_tries=2000)


def test_command_writes_reference_fields_that_read_back(tmp_path):
    world = tmp_path / "world"
    generate_world(str(world), {"test": 30}, ["audio", "video", "points", "image"], progress=False)
    assert main(["--world", str(world), "--out", str(tmp_path / "discrn"), "--pairs", "40"]) == 0
    for first, second in PAIR_KINDS:
        path = tmp_path / "discrn" / f"{first}_{second}.json"
        entries = json.loads(path.read_text())
        assert len(entries) == 40
        assert {"sample_ids", "question", "label", "captions", "properties", "modalities", "paths"} <= set(entries[0])
        pairs = read_discrn(str(path))
        assert [p.label for p in pairs] == [e["label"] for e in entries]
        assert all(p.modalities == [first, second] and all(os.path.isfile(x) for x in p.paths) for p in pairs)
    with pytest.raises(SystemExit):
        main(["--world", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert generate_discrn(str(world), str(tmp_path / "again"), pairs_per_kind=40) == \
        {"points_image.json": 40, "audio_video.json": 40}


REFERENCE_OBJAVERSE = [
    {"sample_ids": ["f6e1", "9ab2"], "question": "which entity is more likely to be found in a kitchen", "label": 0,
     "captions": ["a wooden chair", "a red sports car"], "properties": ["sturdy, wooden", "fast, shiny"],
     "captions_pred_image": ["a chair", "a car"], "captions_pred_pc": ["chair", "car"]},
    {"sample_ids": ["77c0", "31d4"], "question": "which object is round", "label": 0,
     "captions": ["a ball", "a box"], "properties": ["round", "square"],
     "captions_pred_image": ["a ball", "a box"], "captions_pred_pc": ["ball", "box"]},
]
REFERENCE_AUDIOCAPS = [
    {"sample_ids": ["-0Gj8", "x9Yq"], "question": "which entity is louder", "label": 1, "start_seconds": [30.0, 10],
     "captions": ["a man speaks softly", "a siren wails"], "properties": ["quiet", "loud"]},
]


def test_reference_files_read_unchanged_with_their_layouts(tmp_path):
    objaverse, audiocaps = tmp_path / "objaverse.json", tmp_path / "audiocaps.json"
    objaverse.write_text(json.dumps(REFERENCE_OBJAVERSE))
    audiocaps.write_text(json.dumps(REFERENCE_AUDIOCAPS))
    pairs = read_discrn(str(objaverse), media_roots={"image": "/imgs", "points": "/pcs"})
    assert pairs[0].modalities == ["image", "points"] and pairs[0].label == 0
    assert pairs[0].paths == ["/imgs/f6e1_2.jpeg", "/pcs/9ab2/9ab2_8192.npz"]
    assert pairs[0].extra["captions_pred_pc"] == ["chair", "car"] and pairs[0].question_type is None
    balanced = read_discrn(str(objaverse), media_roots={"image": "/imgs", "points": "/pcs"}, balance_labels=True)
    assert [p.label for p in balanced] == [1, 0]
    assert balanced[0].sample_ids == ["9ab2", "f6e1"] and balanced[0].captions == ["a red sports car", "a wooden chair"]
    assert balanced[0].extra["captions_pred_image"] == ["a car", "a chair"]
    assert balanced[0].modalities == ["points", "image"], "each input keeps its own modality when they swap"
    assert balanced[0].paths == ["/pcs/9ab2/9ab2_8192.npz", "/imgs/f6e1_2.jpeg"]
    assert balanced[1].modalities == ["image", "points"] and balanced[1].sample_ids == ["77c0", "31d4"]
    (audio_pair,) = read_discrn(str(audiocaps), media_roots={"video": "/v", "audio": "/a"})
    assert audio_pair.modalities == ["video", "audio"]
    assert audio_pair.paths == ["/v/-0Gj8_30.mp4", "/a/x9Yq_10.flac"]
    unknown = tmp_path / "pairs.json"
    unknown.write_text(json.dumps(REFERENCE_AUDIOCAPS))
    with pytest.raises(ValueError, match="modalities"):
        read_discrn(str(unknown))
    assert read_discrn(str(unknown), modalities=("video", "audio"))[0].label == 1
    unknown.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="json list"):
        read_discrn(str(unknown))


@pytest.mark.parametrize("answer, choice", [
    ("first", 0), ("The first one.", 0), ("(a)", 0), ("A", 0), ("a.", 0), ("Scene A", 0), ("1st", 0),
    ("The answer is A.", 0), ("the one on the left", 0), ("Input 1", 0), ("the 3D model", 0), ("a 3d model", 0),
    ("Option B", 1), ("(b) right one", 1), ("Second!", 1), ("Entity 2", 1), ("Answer: B", 1), ("b", 1),
    ("the image", 1), ("the picture on the right", 1), ("the rendering", 0),
    ("Neither", None), ("A red cube", None), ("Both the first and the second", None),
    ("the first, not the second", None), ("The image is left of the 3D model", None), ("", None),
])
def test_answer_metric_on_tricky_strings(answer, choice):
    assert answer_choice(answer, ("points", "image")) == choice
    assert is_correct(answer, 0, ("points", "image")) == (choice == 0)


def test_modality_names_count_only_when_the_inputs_differ_in_kind():
    assert answer_choice("the image", ("image", "image")) is None
    assert answer_choice("the sound", ("audio", "video")) == 0
    assert answer_choice("the video clip", ("audio", "video")) == 1
    pairs = [DisCRnPair(["x", "y"], "Which one is faster?", label, ["", ""], [{}, {}], ["audio", "video"],
                        [None, None]) for label in (0, 0, 1)]
    result = score(pairs, ["first", "the second one", "both"])
    assert result == {"accuracy": pytest.approx(1 / 3), "undecided": pytest.approx(1 / 3), "chance": 0.5,
                      "pairs": 3}
    with pytest.raises(ValueError, match="answers"):
        score(pairs, ["first"])


def test_reference_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "objaverse.json"
    path.write_text(json.dumps(REFERENCE_OBJAVERSE), encoding="utf-8-sig")
    assert [p.label for p in read_discrn(str(path))] == [0, 0]


@pytest.mark.parametrize("change, message", [
    ({"label": 2}, "entry 1: label must be 0 or 1"), ({"label": None}, r"entry 1 lacks \['label'\]"),
    ({"label": True}, "entry 1: label must be 0 or 1"), ({"sample_ids": ["a"]}, "entry 1: sample_ids .* two"),
    ({"modalities": ["image", "foo"]}, "entry 1: modalities .* not two of"),
    ({"modalities": ["image", "pc", "audio"]}, "entry 1: modalities"), ({"captions": None}, "entry 1: captions"),
    ({"captions": ["only one"]}, "entry 1: captions"), ({"question": 3}, "entry 1: question"),
])
def test_invalid_entries_are_errors_naming_the_entry(tmp_path, change, message):
    path = tmp_path / "objaverse.json"
    path.write_text(json.dumps([REFERENCE_OBJAVERSE[0], {**REFERENCE_OBJAVERSE[1], **change}]))
    with pytest.raises(ValueError, match=message):
        read_discrn(str(path))


def test_the_reference_label_names_read_as_their_numbers(tmp_path):
    path = tmp_path / "objaverse.json"
    path.write_text(json.dumps([{**e, "label": name} for e, name in zip(REFERENCE_OBJAVERSE, ("second", "First"))]))
    assert [p.label for p in read_discrn(str(path))] == [1, 0]
    path.write_text("[{")
    with pytest.raises(ValueError, match="not a DisCRn json file"):
        read_discrn(str(path))


def test_evaluator_answers_every_method_and_captions_each_input_once(tiny_pipeline, tmp_path):
    from train.eval_discrn import DisCRnEvaluator, caption_question

    from train.world.dataset import load_split

    world = tmp_path / "world"
    generate_world(str(world), {"test": 6}, ["points", "image"], progress=False)
    pairs = make_pairs(load_split(str(world), "test", "points"), load_split(str(world), "test", "image"), 4,
                       np.random.default_rng(0))
    evaluator = DisCRnEvaluator(tiny_pipeline, max_new_tokens=4, caption_tokens=8)
    result = evaluator.run(pairs)
    assert set(result["methods"]) == {"joint", "captions", "oracle_captions", "chance"}
    for method in ("joint", "captions", "oracle_captions"):
        summary = result["methods"][method]
        assert summary["pairs"] == 4 and 0.0 <= summary["accuracy"] <= 1.0
        assert set(summary["by_question_type"]) <= set(QUESTION_TYPES[("points", "image")])
    inputs = {(m, p) for pair in pairs for m, p in zip(pair.modalities, pair.paths)}
    assert set(evaluator._captions) == inputs  # one caption per distinct input, reused across pairs
    prompt = caption_question(pairs[0], ["a red cube", "two blue circles"])
    assert prompt.endswith(f"Question: {pairs[0].question}")
    assert "First input (3D object): a red cube\nSecond input (image): two blue circles" in prompt


class RecordingModel:
    """Stands in for the model: renders the prompt with core.prompt and keeps the media order the LLM would see."""

    def __init__(self):
        self.orders = []

    def media_tokens(self, modality, encoded, question, settings):
        return SimpleNamespace(tokens=torch.zeros(2))

    def build_input(self, question, media, history, prefix_cues=True, keep_media_order=False):
        from core.prompt import MediaSlot, render_pieces

        pieces = render_pieces(question, list(media), history, None, prefix_cues, "vicuna", keep_order=keep_media_order)
        self.orders.append([p.modality for p in pieces if isinstance(p, MediaSlot)])
        return SimpleNamespace(inputs_embeds=torch.zeros(1, 3))


@pytest.mark.parametrize("name, roots", [("objaverse.json", {"image": "/i", "points": "/p"}),
                                         ("audiocaps.json", {"video": "/v", "audio": "/a"})])
def test_joint_prompt_presents_the_inputs_in_the_pairs_slot_order(tmp_path, name, roots):
    """objaverse.json is image-then-3D and audiocaps.json video-then-audio, the reverse of the canonical order: the
    LLM must still see the first input first, or "first" would name the wrong one."""
    from train.eval_discrn import DisCRnEvaluator

    entries = REFERENCE_OBJAVERSE if name == "objaverse.json" else REFERENCE_AUDIOCAPS
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    pairs = read_discrn(str(path), media_roots=roots, balance_labels=True)
    model = RecordingModel()
    evaluator = DisCRnEvaluator(SimpleNamespace(model=model, encode_file=lambda m, p: (p,)))
    evaluator._answer = lambda prompts, max_new_tokens: ["the first one"] * len(prompts)
    result = evaluator.run(pairs, ("joint",))
    assert model.orders == [p.modalities for p in pairs]
    assert result["methods"]["joint"]["accuracy"] == sum(p.label == 0 for p in pairs) / len(pairs)


def test_render_pieces_keeps_the_canonical_media_order_by_default():
    from core.prompt import MediaSlot, render_pieces

    slots = [p.modality for p in render_pieces("Q?", ["image", "points"], [], None, style="vicuna")
             if isinstance(p, MediaSlot)]
    assert slots == ["points", "image"]


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading the model fails the test: argument errors must come before the ~25 s load."""
    from core.pipeline import Pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(Pipeline, "from_preset", refuse)


@pytest.mark.parametrize("extra, message", [
    (["--methods", "joint,bogus"], "'joint,bogus' is not a comma-separated subset of joint,captions,oracle_captions"),
    (["--methods", ","], "not a comma-separated subset"),
    (["--limit", "0"], "expected a whole number of at least 1"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
])
def test_eval_discrn_checks_its_arguments_before_loading_the_model(tmp_path, capsys, no_model_load, extra,
                                                                   message):
    from train.eval_discrn import main as evaluate

    pairs = tmp_path / "objaverse.json"
    pairs.write_text(json.dumps(REFERENCE_OBJAVERSE))
    with pytest.raises(SystemExit):
        evaluate(["--pairs", str(pairs), "--out", str(tmp_path / "out.json"), *extra])
    assert message in capsys.readouterr().err


def test_eval_discrn_checks_the_pairs_file_before_loading_the_model(tmp_path, capsys, no_model_load):
    from train.eval_discrn import main as evaluate

    with pytest.raises(SystemExit):
        evaluate(["--pairs", str(tmp_path / "absent.json"), "--out", str(tmp_path / "out.json")])
    assert "absent.json" in capsys.readouterr().err
    same = tmp_path / "pairs.json"
    same.write_text(json.dumps([{**REFERENCE_OBJAVERSE[0], "modalities": ["image", "image"]}]))
    with pytest.raises(SystemExit):
        evaluate(["--pairs", str(same), "--out", str(tmp_path / "out.json"), "--methods", "joint"])
    assert "the joint method needs two different modalities" in capsys.readouterr().err


class RecordingEvaluator:
    """Stands in for DisCRnEvaluator in main(): keeps the pairs it was asked to answer."""
    pairs: list = []

    def __init__(self, pipeline):
        pass

    def run(self, pairs, methods):
        RecordingEvaluator.pairs = pairs
        return {"pairs": len(pairs), "methods": {}}


def test_eval_discrn_resolves_the_reference_inputs_under_one_media_root_per_modality(tmp_path, capsys, monkeypatch):
    import train.eval_discrn
    from core.pipeline import Pipeline

    monkeypatch.setattr(Pipeline, "from_preset", lambda name: None)
    monkeypatch.setattr(train.eval_discrn, "DisCRnEvaluator", RecordingEvaluator)
    pairs = tmp_path / "objaverse.json"
    pairs.write_text(json.dumps(REFERENCE_OBJAVERSE))
    images, clouds = tmp_path / "images", tmp_path / "clouds"
    for entry in REFERENCE_OBJAVERSE:
        images.mkdir(exist_ok=True)
        (images / f"{entry['sample_ids'][0]}_2.jpeg").write_bytes(b"jpeg")
        (clouds / entry["sample_ids"][1]).mkdir(parents=True)
        (clouds / entry["sample_ids"][1] / f"{entry['sample_ids'][1]}_8192.npz").write_bytes(b"npz")
    command = ["--pairs", str(pairs), "--out", str(tmp_path / "out.json"), "--methods", "joint"]
    train.eval_discrn.main(command + ["--media-root", f"image={images}", "--media-root", f"pc={clouds}"])
    assert RecordingEvaluator.pairs[0].paths == [str(images / "f6e1_2.jpeg"), str(clouds / "9ab2" / "9ab2_8192.npz")]
    capsys.readouterr()
    for roots, message in [([], "the image, points inputs have no file"),
                           (["--media-root", f"image={images}", "--media-root", f"points={images}"],
                            "2 input files do not exist"),
                           (["--media-root", f"smell={images}"], "unknown modality 'smell'"),
                           (["--media-root", f"image={tmp_path / 'nowhere'}"], "nowhere is not a folder"),
                           (["--media-root", str(images)], "expected MODALITY=DIR"),
                           (["--media-root", f"image={images}", "--media-root", f"image={clouds}"],
                            "--media-root names a modality twice")]:
        with pytest.raises(SystemExit):
            train.eval_discrn.main(command + roots)
        assert message in capsys.readouterr().err
    train.eval_discrn.main(["--pairs", str(pairs), "--out", str(tmp_path / "out.json"), "--methods",
                            "oracle_captions"])
    assert RecordingEvaluator.pairs[0].paths == [None, None], "oracle captions need no files"


def test_eval_discrn_balance_labels_swaps_the_inputs_as_read_discrn_does(tmp_path, monkeypatch, capsys):
    import train.eval_discrn
    from core.pipeline import Pipeline

    monkeypatch.setattr(Pipeline, "from_preset", lambda name: None)
    monkeypatch.setattr(train.eval_discrn, "DisCRnEvaluator", RecordingEvaluator)
    pairs = tmp_path / "objaverse.json"
    pairs.write_text(json.dumps(REFERENCE_OBJAVERSE))
    command = ["--pairs", str(pairs), "--out", str(tmp_path / "out.json"), "--methods", "oracle_captions"]
    train.eval_discrn.main(command)
    assert [p.label for p in RecordingEvaluator.pairs] == [0, 0]
    train.eval_discrn.main(command + ["--balance-labels"])
    assert [p.label for p in RecordingEvaluator.pairs] == [1, 0]
    monkeypatch.setattr("core.presets.available_presets", lambda: ["tiny"])  # as on a machine without CUDA
    with pytest.raises(SystemExit):
        train.eval_discrn.main(command + ["--preset", "instructblip-7b"])
    assert "the instructblip-7b preset needs a CUDA GPU" in capsys.readouterr().err
    balanced = read_discrn(str(pairs), balance_labels=True)
    assert [vars(p) for p in RecordingEvaluator.pairs] == [vars(p) for p in balanced]


def test_eval_discrn_scores_a_checkpoint_folder_that_holds_every_bridge_the_pairs_need(tmp_path, capsys, monkeypatch):
    import train.eval_discrn
    from core.pipeline import Pipeline

    loaded = {}
    monkeypatch.setattr(Pipeline, "from_preset", lambda name, **overrides: loaded.update(overrides))
    monkeypatch.setattr(train.eval_discrn, "DisCRnEvaluator", RecordingEvaluator)
    pairs = tmp_path / "objaverse.json"
    pairs.write_text(json.dumps(REFERENCE_OBJAVERSE))
    folder = tmp_path / "retrained"
    folder.mkdir()
    command = ["--pairs", str(pairs), "--out", str(tmp_path / "out.json"), "--methods", "oracle_captions",
               "--checkpoint-dir", str(folder)]
    with pytest.raises(SystemExit):
        train.eval_discrn.main(command)
    assert "lacks image.safetensors, points.safetensors, points_encoder.safetensors" in capsys.readouterr().err
    for name in ("image", "points", "points_encoder"):
        (folder / f"{name}.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit):
        train.eval_discrn.main(command + ["--preset", "instructblip-7b"])
    assert "replaces the tiny preset's checkpoints" in capsys.readouterr().err
    train.eval_discrn.main(command)
    assert loaded == {"checkpoint_dir": folder}
    assert json.loads((tmp_path / "out.json").read_text())["checkpoint_dir"] == str(folder)


def test_a_kind_the_split_is_too_small_for_writes_no_file_at_all(tmp_path):
    world = tmp_path / "world"
    generate_world(str(world), {"test": 12}, ["points", "image"], progress=False)
    generate_world(str(world), {"test": 1}, ["audio", "video"], progress=False)
    with pytest.raises(ValueError, match="too small"):
        generate_discrn(str(world), str(tmp_path / "pairs"), pairs_per_kind=2)
    assert not (tmp_path / "pairs").exists() or not list((tmp_path / "pairs").iterdir())
