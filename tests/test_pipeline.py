"""The real offline stack end to end: SmolLM2 through the Q-Formers (untrained ones are enough here)."""
import threading

import pytest

from core.media import MediaError
from core.schema import AskRequest, GenerationSettings
from tests.media_fixtures import make_audio, make_image, make_mesh_file, make_video

SHORT = GenerationSettings(max_new_tokens=8)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    return {
        "image": str(make_image(folder / "a.png", size=(96, 64))),
        "audio": str(make_audio(folder / "a.wav", seconds=1.5)),
        "video": str(make_video(folder / "a.mp4", seconds=1.0)),
        "points": str(make_mesh_file(folder / "a.obj")),
    }


def test_text_only_chat_answers(tiny_pipeline):
    result = tiny_pipeline.ask(AskRequest("What is the capital of France?", settings=GenerationSettings(max_new_tokens=12)))
    assert "Paris" in result.answer
    assert result.tokens_generated > 0 and result.attention == {}


def test_tokens_stream_before_the_result(tiny_pipeline):
    """A tiny-world picture and the captioning prompt, so the trained bridge answers in several words (about a
    synthetic test image it may answer in one, which proves nothing about streaming)."""
    from demo.examples import EXAMPLES_DIR

    request = AskRequest("Describe the image briefly.", image=str(EXAMPLES_DIR / "world_picture.jpg"), settings=SHORT)
    events = list(tiny_pipeline.stream(request))
    deltas = [e.delta for e in events if e.result is None]
    assert len(deltas) >= 2, "the answer arrived in one piece instead of streaming"
    result = events[-1].result
    assert result.answer == "".join(deltas).strip()
    for key in ("load", "encode_image", "qformer", "first_token", "total", "tokens_per_s"):
        assert key in result.timings_s
    assert result.timings_s["first_token"] <= result.timings_s["total"]


def _chat_prompt(llm, text: str):
    """A one-turn text prompt as (embeddings, mask), the form `stream_generate` takes."""
    import torch

    ids = llm.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True).input_ids
    return llm.model.get_input_embeddings()(ids), torch.ones_like(ids)


def test_first_token_time_is_taken_when_the_llm_produces_it(tiny_pipeline):
    """The streamer holds text back until a word ends, so a one-word answer would arrive in one piece at the end;
    the time to first token must come from the token itself, before the rest is decoded."""
    import time

    from core.llm import stream_generate

    llm = tiny_pipeline.model.llm
    embeds, mask = _chat_prompt(llm, "Count from one to ten in words.")
    stats: dict = {}
    arrivals = [time.perf_counter() for _ in stream_generate(llm, embeds, mask, SHORT, stats=stats)]
    assert stats["tokens"] == SHORT.max_new_tokens
    assert stats["first_token_at"] < arrivals[-1]


def test_a_reader_that_leaves_early_stops_the_llm(tiny_pipeline):
    """Breaking out of the stream must end generation before the model lock is released, or the next request would
    run the model while an orphaned thread still decodes up to max_new_tokens."""
    from core.llm import GENERATE_THREAD_NAME, stream_generate

    llm = tiny_pipeline.model.llm
    stats: dict = {}
    pieces = stream_generate(llm, *_chat_prompt(llm, "Write a long story about a dragon."),
                             GenerationSettings(max_new_tokens=400), stats=stats)
    next(pieces)
    pieces.close()
    assert not any(t.name == GENERATE_THREAD_NAME and t.is_alive() for t in threading.enumerate())
    assert stats["tokens"] < 50, "generation ran on after the reader left"
    events = tiny_pipeline.stream(AskRequest("Write a long story about a dragon.",
                                             settings=GenerationSettings(max_new_tokens=400)))
    next(events)
    events.close()  # the pipeline closes its generation too, so the lock is free for the next question at once
    assert tiny_pipeline.ask(AskRequest("What is the capital of France?", settings=SHORT)).answer


def test_all_four_modalities_at_once_with_attention_for_each(tiny_pipeline, media):
    result = tiny_pipeline.ask(AskRequest("What do you perceive?", settings=SHORT, **media))
    assert result.answer.strip()
    assert set(result.attention) == {"image", "audio", "video", "points"}
    assert result.attention["image"].weights.shape == (1, 2, 8, 49)
    assert result.attention["video"].weights.shape[0] == tiny_pipeline.preset.num_video_frames
    assert result.attention["audio"].weights.shape[0] == tiny_pipeline.preset.audio_segments
    points = result.attention["points"]
    assert points.points.shape == (tiny_pipeline.preset.num_points, 3)
    assert points.weights.shape[-1] == points.group_centres.shape[0]


def test_second_question_on_the_same_file_is_a_cache_hit(tiny_pipeline, media, tmp_path):
    copy = tmp_path / "same-content.png"
    copy.write_bytes(open(media["image"], "rb").read())
    tiny_pipeline.ask(AskRequest("First?", image=media["image"], settings=SHORT))
    hits = tiny_pipeline.cache.hits
    result = tiny_pipeline.ask(AskRequest("Second?", image=str(copy), settings=SHORT))
    assert tiny_pipeline.cache.hits == hits + 1
    assert result.timings_s["encode_image"] == 0.0


def test_linear_projection_baseline_runs_and_an_untrained_one_is_refused(tiny_pipeline, media):
    settings = GenerationSettings(max_new_tokens=4, projection="linear")
    bridge = tiny_pipeline.model.bridges["image"]
    shipped = bridge.baseline_trained
    try:
        bridge.baseline_trained = True
        result = tiny_pipeline.ask(AskRequest("What is it?", image=media["image"], settings=settings))
        assert result.answer.strip() and "image" not in result.attention
        bridge.baseline_trained = False
        with pytest.raises(ValueError, match="no trained linear-projection baseline"):
            tiny_pipeline.ask(AskRequest("What is it?", image=media["image"], settings=settings))
    finally:
        bridge.baseline_trained = shipped


@pytest.mark.parametrize("decoding", ["beam", "nucleus"])
def test_other_decodings(tiny_pipeline, decoding):
    settings = GenerationSettings(max_new_tokens=6, decoding=decoding, num_beams=2)
    assert tiny_pipeline.ask(AskRequest("Name a colour.", settings=settings)).answer.strip()


def test_stop_event_ends_generation_early(tiny_pipeline):
    stop = threading.Event()
    pieces = []
    for event in tiny_pipeline.stream(AskRequest("Tell me a long story about a cube.",
                                                 settings=GenerationSettings(max_new_tokens=200)), stop=stop):
        if event.result is None:
            pieces.append(event.delta)
            stop.set()
        else:
            result = event.result
    assert result.tokens_generated < 20


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_an_answer_stopped_before_it_starts_makes_no_token(tiny_pipeline, decoding):
    """Stop pressed while the question waited in the queue or the optimiser ran: generate must not run at all."""
    stop = threading.Event()
    stop.set()
    events = list(tiny_pipeline.stream(AskRequest("Say hello.", settings=GenerationSettings(
        max_new_tokens=8, decoding=decoding)), stop=stop))
    assert [e.delta for e in events if e.result is None] == []
    assert events[-1].result.tokens_generated == 0 and events[-1].result.answer == ""


def test_bad_input_raises_a_media_error(tiny_pipeline, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(MediaError):
        tiny_pipeline.ask(AskRequest("What is it?", image=str(broken), settings=SHORT))
    with pytest.raises(ValueError, match="empty"):
        tiny_pipeline.ask(AskRequest("   ", settings=SHORT))
    with pytest.raises(ValueError, match="4,001 characters; the limit is 4,000"):
        tiny_pipeline.ask(AskRequest("x" * 4001, settings=SHORT))
    with pytest.raises(ValueError, match="the Q-Former prompt is 4,001 characters"):  # the API's path to it
        tiny_pipeline.ask(AskRequest("What is it?", settings=SHORT, qformer_prompt="x" * 4001))
    emoji = "\U0001F984" * 3000  # under the character limit, 9,000 tokens: refused before the optimiser runs
    with pytest.raises(ValueError, match="tokens; the limit is 1,500"):
        tiny_pipeline.ask(AskRequest(emoji, settings=SHORT, optimize=True))
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(3 * 2**30)  # sparse: refused by size before the pipeline hashes it
    with pytest.raises(MediaError, match="over the 50 MB limit"):
        tiny_pipeline.encode_file("image", str(huge))


@pytest.fixture
def context_of(tiny_pipeline, monkeypatch):
    """Shrinks the LLM's context window, so a short chat outgrows it."""
    def shrink(positions: int) -> None:
        monkeypatch.setattr(type(tiny_pipeline.model.llm), "context_length", property(lambda self: positions))
    return shrink


def test_a_chat_that_outgrows_the_context_loses_only_its_oldest_turns(tiny_pipeline, context_of):
    history = [(f"Tell me fact number {i} about the sea and its many waves.", f"Fact {i}: the sea is deep and wide.")
               for i in range(8)]
    question = "And one more fact?"

    def length(turns):
        return tiny_pipeline.model.build_input(question, {}, turns).inputs_embeds.shape[1]

    limit = length(history[3:]) + SHORT.max_new_tokens
    context_of(limit)
    result = tiny_pipeline.ask(AskRequest(question, history=history, settings=SHORT))
    assert result.history_turns_dropped == 3  # the fewest that fit: keeping turn 2 as well would overrun
    assert length(history[2:]) + SHORT.max_new_tokens > limit
    assert result.to_json()["history_turns_dropped"] == 3


def test_a_question_that_cannot_fit_the_context_is_refused(tiny_pipeline, context_of):
    context_of(40)
    with pytest.raises(ValueError, match="over the LLM's context of 40"):
        tiny_pipeline.ask(AskRequest("What is the capital of France?", settings=SHORT))


def test_nf4_llm_loads_on_cpu_and_answers():
    from core.llm import load_llm, stream_generate
    from core.presets.tiny import tiny_llm_folder

    llm = load_llm(tiny_llm_folder(), quantization="nf4")
    assert type(llm.model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    text = llm.tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                             tokenize=False, add_generation_prompt=True)
    ids = llm.tokenizer(text, return_tensors="pt").input_ids
    answer = "".join(stream_generate(llm, llm.embed(ids), ids.new_ones(ids.shape),
                                     GenerationSettings(max_new_tokens=10)))
    assert "Paris" in answer


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_reusing_the_prompt_opening_changes_no_answer(tiny_pipeline, media, monkeypatch, decoding):
    settings = GenerationSettings(max_new_tokens=12, decoding=decoding)
    request = AskRequest("Describe the picture.", image=media["image"], settings=settings)
    cached = tiny_pipeline.ask(request)
    assert len(tiny_pipeline.prefix_cache._entries) >= 1  # the opening (system turn, cue) is kept
    monkeypatch.setattr(tiny_pipeline.prefix_cache, "cache_for", lambda *args: None)
    assert tiny_pipeline.ask(request).answer == cached.answer


def test_prompt_opening_cache_leaves_the_last_tokens_to_generation(tiny_pipeline):
    from core.llm import PrefixKVCache

    ids = tiny_pipeline.model.llm.tokenizer("Hello there", return_tensors="pt").input_ids[0]
    cache = PrefixKVCache(max_entries=1)
    assert cache.cache_for(tiny_pipeline.model.llm, ids, prompt_length=len(ids)) is None  # the whole prompt
    first = cache.cache_for(tiny_pipeline.model.llm, ids, prompt_length=len(ids) + 5)
    assert first.get_seq_length() == len(ids)
    cache.cache_for(tiny_pipeline.model.llm, ids[:1], prompt_length=9)
    assert len(cache._entries) == 1  # bounded: the older opening went
