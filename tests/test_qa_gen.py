"""Instruction data from captions: template questions are answered by the record, and the LLM round trip keeps a
generated pair only when answering it from the caption gives the answer back."""
from train.qa_gen import llm_round_trip, template_examples
from train.world.dataset import make_sample


def test_template_examples_answer_from_the_record_and_include_a_caption_example(tmp_path):
    record = make_sample(str(tmp_path), "train", "image", 0, 3)
    rows = [{"caption": record.caption, "captions": record.captions, "properties": record.properties}]
    examples = template_examples(rows, "image", seed=0)
    tasks = {e["task"] for e in examples}
    assert {"colour", "count", "object", "position", "size", "caption"} <= tasks
    colours = {g["colour"] for g in record.properties["groups"]}
    assert all(e["answer"] in colours for e in examples if e["task"] == "colour")
    assert all(e["answer"] in e["accepted"] for e in examples)
    assert [e["answer"] for e in examples if e["task"] == "caption"] == [record.caption]
    assert len({e["question"] for e in examples}) == len(examples)  # paraphrase draws never repeat a question


class ScriptedLLM:
    """Replies by prompt kind, so each filter of the round trip can be hit on purpose."""

    def __init__(self, replies):
        self.replies = replies

    def __call__(self, prompts, max_new_tokens):
        kind = "answer" if prompts[0].startswith("Pick one word") else \
            "question" if prompts[0].startswith("Write a question") else "round_trip"
        return [self.replies[kind](p.rsplit("Text: ", 1)[1]) for p in prompts]  # the caption's block, not the shots


def test_round_trip_keeps_only_pairs_whose_answer_comes_back():
    rows = [{"caption": c} for c in ("a small red cube on the left", "two large blue circles", "a green car")]
    replies = {
        "answer": lambda p: {"red": "red", "blue": "Blue", "green": "purple"}[next(w for w in ("red", "blue", "green")
                                                                                   if w in p)],
        "question": lambda p: "What color is the cube?" if "cube" in p else "How many circles are there?",
        "round_trip": lambda p: "red" if "cube" in p else "two",
    }
    kept, report = llm_round_trip(rows, [0, 1, 2], ScriptedLLM(replies))
    # "purple" is not in its caption; "blue" comes back as "two", so only the cube's pair survives
    assert report["answer_words_found_in_caption"] == 2 and report["questions_well_formed"] == 2
    assert report["round_trip_kept"] == 1
    assert kept == [{"sample": 0, "question": "What color is the cube?", "answer": "red", "task": "llm_qa",
                     "accepted": ["red"], "round_trip": "red", "fuzzy": 100.0}]


def test_real_data_records_get_caption_examples_without_templates(tmp_path):
    """A COCO record has no tiny-world properties: the templates are skipped instead of raising KeyError."""
    record = make_sample(str(tmp_path), "train", "image", 0, 3)
    rows = [{"caption": "A dog on a sofa.", "captions": ["A dog on a sofa.", "A brown dog."],
             "properties": {"image_id": 42, "file_name": "x.jpg"}, "source": "coco"},
            {"caption": record.caption, "captions": record.captions, "properties": record.properties,
             "source": "tiny-world"}]
    examples = template_examples(rows, "image", seed=0)
    real = [e for e in examples if e["sample"] == 0]
    assert real == [{"sample": 0, "question": real[0]["question"], "answer": "A dog on a sofa.", "task": "caption",
                     "accepted": ["A dog on a sofa.", "A brown dog."]}]
    assert {"colour", "count", "caption"} <= {e["task"] for e in examples if e["sample"] == 1}


def test_command_names_a_missing_manifest_as_a_usage_error(tmp_path, capsys):
    import pytest

    from train.qa_gen import main

    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "i"), "--split", "val",
              "--modality", "audio"])
    assert "nowhere/val/audio/manifest.jsonl does not exist; make the data first" in capsys.readouterr().err


def test_help_gives_the_whole_first_paragraph_of_the_docstring(capsys):
    import pytest

    from train.qa_gen import main as qa_gen
    from train.train_qformer import main as train_qformer

    for main, ending in ((qa_gen, "kept only when an LLM round trip gives the answer back."),
                         (train_qformer, "trained Q-Former) on cached features.")):
        with pytest.raises(SystemExit):
            main(["--help"])
        assert ending in " ".join(capsys.readouterr().out.split())


def test_the_round_trip_llm_options_are_checked(tmp_path, capsys):
    """--llm without --llm-captions would be ignored, and an LLM that cannot load is named, both as usage errors."""
    import pytest

    from train.qa_gen import main
    from train.world.dataset import generate_world

    generate_world(str(tmp_path / "world"), {"val": 2}, ["image"], progress=False)
    common = ["--data", str(tmp_path / "world"), "--out", str(tmp_path / "i"), "--split", "val", "--modality", "image"]
    with pytest.raises(SystemExit):
        main(common + ["--llm-quantization", "nf4"])
    assert "choose the round trip's LLM; add --llm-captions N" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common + ["--llm-captions", "2", "--llm", str(tmp_path / "no_llm")])
    assert f"cannot load --llm {tmp_path / 'no_llm'}" in capsys.readouterr().err
    assert not (tmp_path / "i" / "val" / "image.jsonl").exists()


def test_the_round_trip_runs_with_the_tiny_llm(tmp_path):
    """The default LLM, end to end: every step is counted and each kept pair's answer is a word of its caption."""
    import json

    from train.qa_gen import main
    from train.world.dataset import generate_world

    generate_world(str(tmp_path / "world"), {"val": 8}, ["image"], progress=False)
    main(["--data", str(tmp_path / "world"), "--out", str(tmp_path / "i"), "--split", "val", "--modality", "image",
          "--llm-captions", "8"])
    report = json.loads((tmp_path / "i" / "val" / "image.llm_report.json").read_text())
    assert report["captions"] == 8
    assert 8 >= report["answer_words_found_in_caption"] >= report["questions_well_formed"] >= report["round_trip_kept"]
    captions = [json.loads(line)["caption"] for line in (tmp_path / "world" / "val" / "image" / "manifest.jsonl").open()]
    kept = [json.loads(line) for line in (tmp_path / "i" / "val" / "image.llm.jsonl").open()]
    assert len(kept) == report["round_trip_kept"] >= 1  # the reference's chat-turn prompts kept none
    assert all(pair["answer"] in captions[pair["sample"]] and pair["question"].endswith("?") for pair in kept)


def test_a_completion_is_its_first_line_and_one_that_starts_a_new_line_is_empty(monkeypatch):
    """The few-shot prompts end where the answer goes; a completion that breaks the line at once gave no answer,
    and must not be read as the next example's text."""
    import torch

    import core.llm
    from train.qa_gen import CompletionGenerator

    class StubLLM:
        tokenizer = staticmethod(lambda text, return_tensors: type("Ids", (), {"input_ids": torch.zeros(1, 2)}))
        embed = staticmethod(lambda ids: ids)

    monkeypatch.setattr(core.llm, "greedy_batch", lambda llm, prompts, n, size, strip: [" green\nText: a", "\nWord: x?"])
    assert CompletionGenerator(StubLLM())(["Word:", "Word:"], max_new_tokens=4) == ["green", ""]
