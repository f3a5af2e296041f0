"""The one object the UI, CLI, benchmarks and tests call: media in, streamed answer, attention and timings out."""
from __future__ import annotations

import threading
import time
from contextlib import closing
from typing import Any, Iterator, Optional

from core.cache import EncoderCache
from core.encoders.base import EncodedMedia
from core.media_checks import DEFAULT_LIMITS, check_file
from core.prompt import AssembledInput
from core.schema import (MAX_QUESTION_TOKENS, AskRequest, AskResult, CmaaAttention, GenerationSettings,
                         ModalityAttention, OptimizerTrace, StreamEvent, checked_question)


def _attention_record(modality: str, encoded: EncodedMedia, cross: Any) -> ModalityAttention:
    """Cross-attention as NumPy, over the encoder tokens that have a place (a ViT's leading [CLS] has none)."""
    weights = cross.detach().float().cpu().numpy()[..., encoded.extras.get("leading_tokens", 0):]
    if modality == "points":
        return ModalityAttention(weights=weights, group_centres=encoded.group_centres.numpy(),
                                 points=encoded.points.numpy())
    if modality == "audio":
        return ModalityAttention(weights=weights, segment_seconds=encoded.segment_seconds)
    return ModalityAttention(weights=weights, grid_hw=encoded.grid_hw)


def decode_media(preset, modality: str, path: str) -> Any:
    """Decode and validate one input with a preset's sampling settings (raises core.media.MediaError); needs no
    model, so a caller can refuse bad media before the preset loads."""
    from core import media

    if modality == "image":
        return media.load_image(path)
    if modality == "audio":
        return media.load_audio(path, sample_rate=16000)
    if modality == "video":
        return media.load_video(path, num_frames=preset.num_video_frames)
    if modality == "points":
        return media.load_points(path, num_points=preset.num_points)
    raise ValueError(f"unknown modality {modality!r}")


class Pipeline:
    """Holds one loaded preset; thread-safe: the Q-Formers and the LLM run one request at a time under a lock,
    while encoders (stateless inference) and the encoder cache serve requests side by side; state lives in
    requests."""

    def __init__(self, model, preset, cache: Optional[EncoderCache] = None) -> None:
        from core.llm import PrefixKVCache

        self.model = model
        self.preset = preset
        self.cache = cache or EncoderCache()
        self.prefix_cache = PrefixKVCache()
        self.load_seconds = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_preset(cls, name: str = "tiny", **overrides) -> "Pipeline":
        from core.presets import get_preset

        return cls.for_preset(get_preset(name, **overrides))

    @classmethod
    def for_preset(cls, preset) -> "Pipeline":
        """Loads a preset already chosen (so media can be decoded with its settings before the slow load)."""
        start = time.perf_counter()
        pipeline = cls(preset.build(preset), preset)
        pipeline.load_seconds = time.perf_counter() - start
        return pipeline

    def encode_file(self, modality: str, path: str, decoded: Any = None) -> tuple[EncodedMedia, bool]:
        """Encoder output for a file, from the cache when the same content was seen with this preset; `decoded` is
        the file's `decode_media` output when the caller already has it."""
        from core.media import file_digest

        check_file(path, modality, DEFAULT_LIMITS)  # before hashing: a 3 GB upload is refused without reading it
        key = (file_digest(path), self.preset.name, modality, self.preset.num_video_frames, self.preset.num_points)

        def encode() -> EncodedMedia:
            return self.model.encode(modality, decoded if decoded is not None
                                     else decode_media(self.preset, modality, path))

        return self.cache.get_or_compute(key, encode)

    def stream(self, request: AskRequest, stop: Optional[threading.Event] = None,
               decoded: Optional[dict[str, Any]] = None) -> Iterator[StreamEvent]:
        """Text deltas as the LLM produces them, then one event with the full `AskResult`; `decoded` holds media the
        caller decoded already, by modality, with `decode_media(self.preset, ...)`: they are cached as this preset's."""
        from core.llm import stream_generate

        settings = request.settings
        settings.validate()
        question = checked_question(request.question)
        question_tokens = len(self.model.llm.tokenizer(question, add_special_tokens=False).input_ids)
        if question_tokens > MAX_QUESTION_TOKENS:
            raise ValueError(f"the question is {question_tokens:,} tokens; the limit is {MAX_QUESTION_TOKENS:,}")
        if (request.qformer_prompt or "").strip():  # blank means none (the app's empty box)
            checked_question(request.qformer_prompt, "the Q-Former prompt")
        unknown = set(request.media_paths()) - set(self.model.modalities)
        if unknown:
            raise ValueError(f"preset {self.preset.name!r} has no {sorted(unknown)[0]} model")
        timings: dict[str, float] = {"load": self.load_seconds}
        start = time.perf_counter()
        encoded: dict[str, EncodedMedia] = {}
        for modality, path in request.media_paths().items():
            t = time.perf_counter()
            encoded[modality], hit = self.encode_file(modality, path, (decoded or {}).get(modality))
            timings[f"encode_{modality}"] = 0.0 if hit else time.perf_counter() - t
        with self._lock:
            trace: Optional[OptimizerTrace] = None
            question_used = question
            if request.optimize:
                from core.optimizer import InstructionOptimizer

                trace = InstructionOptimizer(self.model, openings=self.prefix_cache).optimize(
                    question, encoded, settings, stop=stop)
                question_used = trace.final_instruction
            instruction = (request.qformer_prompt or "").strip() or question_used
            t = time.perf_counter()
            outputs = {m: self.model.media_tokens(m, e, instruction, settings, output_attentions=True)
                       for m, e in encoded.items()}
            timings["qformer"] = time.perf_counter() - t
            prompt, turns_dropped = self._prompt_within_context(
                question_used, {m: o.tokens for m, o in outputs.items()}, request.history, settings)
            stats: dict = {}
            pieces: list[str] = []
            t_generate = time.perf_counter()
            prefix = self.prefix_cache.cache_for(self.model.llm, prompt.leading_ids, prompt.inputs_embeds.shape[1])
            # closed explicitly, so a caller that stops reading also stops the LLM before the lock is released
            with closing(stream_generate(self.model.llm, prompt.inputs_embeds, prompt.attention_mask, settings,
                                         stop=stop, stats=stats, prefix_cache=prefix)) as generation:
                for piece in generation:
                    pieces.append(piece)
                    yield StreamEvent(delta=piece)
            end = time.perf_counter()
        decode_seconds = end - t_generate
        timings["first_token"] = (stats.get("first_token_at") or end) - start  # no token at all: stopped at once
        timings["generate"] = decode_seconds
        timings["total"] = end - start
        tokens = int(stats.get("tokens", 0))
        timings["tokens_per_s"] = tokens / decode_seconds if decode_seconds > 0 else 0.0
        result = AskResult(
            answer="".join(pieces).strip(), instruction_used=question_used, timings_s=timings,
            tokens_generated=tokens,
            attention={m: _attention_record(m, encoded[m], o.cross_attentions)
                       for m, o in outputs.items() if o.cross_attentions is not None},
            cmaa_attention={m: CmaaAttention(weights=o.cmaa_weights.detach().float().cpu().numpy(),
                                             instruction_tokens=self.model.instruction_tokens(instruction))
                            for m, o in outputs.items() if o.cmaa_weights is not None},
            optimizer=trace,
            history_turns_dropped=turns_dropped,
        )
        yield StreamEvent(result=result)

    def _prompt_within_context(self, question: str, media_tokens: dict, history: list[tuple[str, str]],
                               settings: GenerationSettings) -> tuple[AssembledInput, int]:
        """The LLM input with as many of the latest turns as leave room for the answer in the LLM's context, and
        how many of the oldest were left out; past the window the LLM's output is noise."""
        limit = self.model.llm.context_length
        for dropped in range(len(history) + 1):
            prompt = self.model.build_input(question, media_tokens, history[dropped:], prefix_cues=settings.prefix_cues)
            if limit is None or prompt.inputs_embeds.shape[1] + settings.max_new_tokens <= limit:
                return prompt, dropped
        raise ValueError(f"the question and media take {prompt.inputs_embeds.shape[1]:,} tokens; with "
                         f"{settings.max_new_tokens} for the answer that is over the LLM's context of {limit:,}")

    def ask(self, request: AskRequest, stop: Optional[threading.Event] = None) -> AskResult:
        result = None
        for event in self.stream(request, stop=stop):
            if event.result is not None:
                result = event.result
        assert result is not None
        return result

