"""The instruction optimiser: IAS is the right number, batching changes nothing, rewrites are filtered, the
final instruction is never empty, and the CLI shows every candidate."""
import json
import random

import pytest
import torch

from core.llm import PrefixKVCache
from core.optimizer import AlignmentScorer, InstructionOptimizer, meta_prompt
from core.rewrite_checks import (clean_rewrite, dropped_alternative, meaning_change, new_words, question_kinds,
                                 shares_topic)
from core.schema import GenerationSettings
from tests.media_fixtures import make_image

QUESTIONS = ["What color is the square on the left?", "How many objects are in the picture?",
             "Is there a red circle in the image?"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batched decoding with 2 threads on 2 busy shared cores spends most of its time in thread barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tiny_pipeline):
    return tiny_pipeline.model


@pytest.fixture(scope="module")
def encoded(model, tmp_path_factory):
    from core.media import load_image

    path = make_image(tmp_path_factory.mktemp("optimizer") / "x.png")
    return {"image": model.encode("image", load_image(str(path)))}


@pytest.fixture(scope="module")
def optimizer(model):
    return InstructionOptimizer(model)


@pytest.fixture(scope="module")
def prefix(optimizer, encoded):
    return optimizer.prefix(encoded, GenerationSettings())


@pytest.fixture(scope="module")
def scorer(model, prefix):
    return AlignmentScorer(model.llm, prefix)


def full_forward_nll(llm, prefix, instruction):
    """Per-token NLL from one plain forward pass over prefix + instruction, no cache, no batching."""
    ids = torch.tensor(llm.tokenizer(instruction, add_special_tokens=False).input_ids)
    embeds = torch.cat([prefix.inputs_embeds[0], llm.embed(ids)])[None]
    with torch.no_grad():
        logits = llm.model(inputs_embeds=embeds).logits[0].float()
    start = prefix.inputs_embeds.shape[1]
    log_probs = logits[start - 1: start - 1 + len(ids)].log_softmax(-1)
    return (-log_probs[torch.arange(len(ids)), ids]).tolist()


def test_ias_matches_a_direct_full_forward(model, prefix, scorer):
    scored = scorer.score(QUESTIONS)
    for result, question in zip(scored, QUESTIONS):
        direct = full_forward_nll(model.llm, prefix, question)
        assert result.token_nll == pytest.approx(direct, abs=1e-4)
        assert result.ias == pytest.approx(sum(direct) / len(direct), abs=1e-4)
        assert len(result.tokens) == len(result.token_nll)


def test_a_scorer_after_the_cached_prompt_opening_scores_the_same(model, prefix, scorer):
    """The pipeline's scorer prefills only what follows the cached opening (system turn, first cue)."""
    openings = PrefixKVCache()
    AlignmentScorer(model.llm, prefix, openings)  # computes and keeps the opening
    prefilled = []
    handle = model.llm.model.register_forward_hook(
        lambda module, args, kwargs, out: prefilled.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True)
    try:
        reused = AlignmentScorer(model.llm, prefix, openings)
    finally:
        handle.remove()
    assert prefilled == [prefix.inputs_embeds.shape[1] - prefix.leading_ids.numel()]
    for plain, after_opening in zip(scorer.score(QUESTIONS), reused.score(QUESTIONS)):
        assert after_opening.token_nll == pytest.approx(plain.token_nll, abs=1e-4)


def test_batch_scores_equal_one_by_one(scorer):
    together = scorer.score(QUESTIONS + ["Describe it."])
    for result in together:
        alone = scorer.score([result.instruction])[0]
        assert result.token_nll == pytest.approx(alone.token_nll, abs=1e-4)


def test_all_candidates_share_one_forward_pass(model, scorer):
    calls = []
    handle = model.llm.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        scorer.score(QUESTIONS)
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.parametrize("modality", ["image", "audio", "video", "points"])
def test_shuffled_words_score_worse_on_the_trained_bridges(tiny_pipeline, optimizer, tmp_path, modality):
    """On a fresh tiny-world sample, through the shipped (trained) bridge of each modality: the template questions
    as asked score a lower IAS than the same words shuffled."""
    import json

    from core.presets.tiny import CHECKPOINTS
    from train.templates import template_qa
    from train.world.dataset import make_sample

    config = json.loads((CHECKPOINTS / f"{modality}.json").read_text())
    assert "qformer" in config["trained"], f"the shipped {modality} bridge is not trained"
    record = make_sample(str(tmp_path), "test", modality, 0, 910_000)
    encoded, _ = tiny_pipeline.encode_file(modality, record.path)
    scorer = optimizer.scorer({modality: encoded}, GenerationSettings())
    rng = random.Random(0)
    for pair in template_qa(modality, record.properties)[:3]:
        words = pair.question.rstrip("?").split()
        shuffled = words[:]
        while shuffled == words:
            rng.shuffle(shuffled)
        original, worse = scorer.score([pair.question, " ".join(shuffled) + "?"])
        assert worse.ias > original.ias, (pair.question, shuffled)


def test_meta_prompt_names_the_media():
    assert meta_prompt(["image"]) == "Based on the image given, the most appropriate instruction should be:"
    assert "audio clip and 3D object" in meta_prompt(["points", "audio"])


def test_rewrite_filters():
    assert clean_rewrite(' "What colour is it?"\nQuestion: more') == "What colour is it?"
    assert clean_rewrite("Rewrite: Which shape?\n") == "Which shape?"
    assert clean_rewrite(" a rewrite that never ended") is None
    assert shares_topic("What colour is the shape?", "wat colr is teh shap?")
    assert not shares_topic("Is it possible to travel to the moon?", "What colour is the cube?")
    assert new_words("How big is the car?", "big cylinders") == ["car"]
    assert new_words("What size are the cylinders in the picture?", "big cylindres") == []
    assert new_words("No, the object is on the left.", "nae the oject on the right.") == ["left"]


def test_question_kinds_survive_misspelling_and_tell_questions_apart():
    assert question_kinds("whaat collor is the tablle?") == question_kinds("What is the color of the table?") == {
        "colour"}
    assert question_kinds("how maany objets are there?") == {"count"}
    assert question_kinds("Is the voice high or low pitched?") == {"pitch"}
    assert question_kinds("side sphere") == {"position"} != question_kinds("How big is the sphere?")
    assert question_kinds("Could you please, if it is not too much trouble, tell me what it is?") == set()
    assert question_kinds("How much is the shape?") == {"count", "shape"} != question_kinds("wat shap is teh objct?")


def test_a_rewrite_keeps_both_answers_a_question_offers():
    """Seen in the optimiser evaluation: "rhythm fast slow" -> "How fast is the rhythm?", answered "four"."""
    assert dropped_alternative("How fast is the rhythm?", "rhythm fast slow") == "slow"
    assert dropped_alternative("Is the sound high pitched?", "is the sound hgih or low piched?") == "low"
    assert dropped_alternative("Where is the car?", "Is the car on the left or the rihgt?") == "left"
    assert dropped_alternative("Does the car move quickly or slowly?", "does the car move fast or slowy?") is None
    assert dropped_alternative("How quickly does it move?", "how fast does it moov?") is None  # offered no choice
    assert dropped_alternative("Is the chirp rising or falling?", "does teh chirp rise or fall?") is None
    assert dropped_alternative("Is it bigger?", "is it bigger or smaller?") == "small"


def test_common_words_are_not_read_as_misspelled_question_words():
    """'all' is no 'fall', 'own' no 'down', 'bright' no 'right', 'from' no 'form', 'were' and 'here' no 'where'."""
    assert dropped_alternative("Does the pitch rise?", "does the pitch rise at all") is None
    assert dropped_alternative("Does the ball go up?", "does the ball go up on its own") is None
    assert dropped_alternative("Is the bright lamp on the left?", "is the bright lamp on the left") is None
    assert question_kinds("how many cars were there") == {"count"} == question_kinds("How many cars are there?")
    assert question_kinds("colour of the ball from the video") == {"colour"}
    assert question_kinds("what is here?") == set()
    assert dropped_alternative("Is the small ball on the left?", "is the small ball left of the big ball") is None
    assert dropped_alternative("Is the beep low?", "is the quick beep low") is None


def test_a_rewrite_that_repeats_a_sentence_is_dropped():
    """Seen on the validation split: "shown image" -> "You are shown to me. You are shown to me." """
    assert meaning_change("You are shown to me. You are shown to me.", "shown image") == "repeats itself"
    assert meaning_change("What color is the car and what color is the ball?", "wat colr car and ball") is None


@pytest.mark.parametrize("rewrite, original, reason", [
    ("You are not here to tell me about the picture.", "tell me about the picture please", "adds a negation"),
    ("Is the car not red?", "Is the car red?", "adds a negation"),
    ("Is the car red?", "Isn't the car red?", "drops the negation"),
    ("Is there no red car?", "is ther no red car", None),
])
def test_a_rewrite_that_adds_or_drops_a_negation_asks_the_opposite(rewrite, original, reason):
    assert meaning_change(rewrite, original) == reason


def test_a_rewrite_that_asks_who_asks_for_a_person():
    """Seen in bench/optimizer.py on the 3D scene."""
    assert meaning_change("Who is the one on the left?", "wat objct is on teh left?") == "changes what is asked"
    assert meaning_change("Who is on the left?", "who is on teh left") is None


def test_a_rewrite_that_asks_something_else_is_dropped(optimizer, encoded, monkeypatch):
    """The failure seen in the optimiser evaluation: a fluent rewrite of another kind of question."""
    outputs = iter([["How does the cone look?\n", "How big is the cone?\n", "What colour is the cone?\n"], ["\n"]])
    monkeypatch.setattr(optimizer, "_complete", lambda *args, **kwargs: next(outputs))
    trace = optimizer.optimize("colour cone", encoded)
    assert [c.instruction for c in trace.candidates] == ["colour cone", "What colour is the cone?"]
    assert list(trace.rejected.values()) == ["changes what is asked"] * 2


def test_a_rewrite_that_drops_an_alternative_is_dropped(optimizer, encoded, monkeypatch):
    outputs = iter([["How high is the sound?\n", "Is the sound high or low?\n"], ["\n"]])
    monkeypatch.setattr(optimizer, "_complete", lambda *args, **kwargs: next(outputs))
    trace = optimizer.optimize("sound high low pitched", encoded)
    assert [c.instruction for c in trace.candidates] == ["sound high low pitched", "Is the sound high or low?"]
    assert trace.rejected == {"How high is the sound?": "drops the alternative 'low'"}


def test_bad_rewrites_are_dropped_and_the_original_stays(optimizer, encoded, monkeypatch):
    outputs = iter([["\n", "What color is the cube?\n", "The moon is far away from the earth.\n",
                     " a rewrite that goes on and on"], ["\n"]])
    monkeypatch.setattr(optimizer, "_complete", lambda *args, **kwargs: next(outputs))
    trace = optimizer.optimize("What color is the cube?", encoded)
    assert [c.source for c in trace.candidates] == ["original"]
    assert set(trace.rejected.values()) == {"empty", "duplicate", "off-topic", "over-long"}
    assert trace.final_instruction == "What color is the cube?"


def test_optimizer_returns_a_scored_non_empty_instruction(optimizer, encoded):
    trace = optimizer.optimize("wat colr is teh squar on the lft?", encoded)
    assert trace.final_instruction.strip()
    assert trace.candidates[0].source == "original"
    assert trace.candidates[0].instruction == "wat colr is teh squar on the lft?"
    best = min(c.ias for c in trace.candidates)
    chosen = [c for c in trace.candidates if c.instruction == trace.final_instruction]
    assert chosen and chosen[0].ias == best
    assert {"rewrite", "score", "total"} <= set(trace.timings_s)


def test_a_request_for_a_description_is_rewritten_as_one(optimizer):
    """The few-shot prompt shows a "describe" request: without it, the 135M LLM turned every one into a question
    about the examples' boat, and the checks dropped them all."""
    kept = [optimizer.rewrite("descrbe teh picture", ["image"], seed=seed)[0] for seed in range(4)]
    describing = [rewrites for rewrites in kept if any("descr" in r.lower() for r in rewrites)]
    assert len(describing) >= 3, kept


def test_empty_question_is_refused(optimizer, encoded):
    with pytest.raises(ValueError, match="empty"):
        optimizer.optimize("   ", encoded)


def test_cli_json_lists_the_candidates(tmp_path):
    from tests.test_cli import _run

    image = make_image(tmp_path / "x.png")
    proc = _run("--image", str(image), "--optimize", "--max-new-tokens", "4", "--json", "wat colr is the lft half?")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["final_instruction"].strip() and out["instruction_used"] == out["final_instruction"]
    assert out["candidates"][0]["instruction"] == "wat colr is the lft half?"
    for candidate in out["candidates"]:
        assert candidate["instruction"] and isinstance(candidate["ias"], float)
        assert len(candidate["token_nll"]) > 0
    assert "total" in out["optimizer_timings_s"]


def test_a_stop_pressed_before_the_optimiser_runs_skips_its_steps(tiny_pipeline):
    import threading

    from core.schema import AskRequest, GenerationSettings

    stop = threading.Event()
    stop.set()
    result = tiny_pipeline.ask(AskRequest("wat colr is it", optimize=True,
                                          settings=GenerationSettings(max_new_tokens=8)), stop=stop)
    trace = result.optimizer
    assert trace.stopped and trace.candidates == [] and trace.final_instruction == "wat colr is it"
    assert result.tokens_generated <= 1  # the answer, too, stops after its first token
