"""The frozen LLM: loading (fp32 / bf16 / 4-bit nf4), its tokenizer, and streamed generation.

The offline LLM ships as a Q4_1 GGUF file; `transformers` de-quantises it on load, which takes tens of seconds, so
the result is cached once as safetensors under the user's cache folder and later starts read that copy.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Optional

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel,
                          PreTrainedTokenizerBase, TextIteratorStreamer)

from core.schema import GenerationSettings

log = logging.getLogger(__name__)

# Every prompt here is embeddings (media tokens have no ids), so the repetition penalty sees only the answer's own
# tokens, which is what we want; transformers warns about it on every call, filling the CLI's stderr.
warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`", category=UserWarning)

GENERATE_THREAD_NAME = "xmodal-generate"
DType = Literal["float32", "bfloat16", "float16"]
Quantization = Literal["none", "nf4"]


@dataclass
class LoadedLLM:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def width(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def context_length(self) -> Optional[int]:
        """How many positions the LLM was trained on (prompt and answer together); None when its config omits it."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))


def _fix_special_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """The SmolLM2 GGUF names `<|im_start|>` as eos; chat turns end with `<|im_end|>`, so generation must stop there."""
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        tokenizer.eos_token = "<|im_end|>"
        tokenizer.pad_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def _is_complete_cache(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def gguf_safetensors_cache(gguf_path: Path, cache_root: Path) -> Path:
    """De-quantise a GGUF model once into `cache_root/<name>/` (safetensors + tokenizer); return that folder."""
    target = cache_root / gguf_path.stem
    if _is_complete_cache(target):
        return target
    log.info("converting %s to a safetensors cache (first start only)", gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    _fix_special_tokens(tokenizer, model)
    # save_pretrained refuses models loaded from GGUF; the de-quantised weights are plain tensors, so write them
    # directly with a config that no longer mentions the GGUF quantisation.
    from safetensors.torch import save_model

    # A folder of this process's own, renamed into place at the end: two first starts at once (the training lanes
    # of `make checkpoints`) must not write into each other's files.
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=cache_root, prefix=target.name + ".partial-"))
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(partial)
    model.generation_config.save_pretrained(partial)
    save_model(model, str(partial / "model.safetensors"))
    tokenizer.save_pretrained(partial)
    if _is_complete_cache(target):  # another process finished first: its copy is the same conversion
        shutil.rmtree(partial)
        return target
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def load_llm(source: str | Path, dtype: DType = "float32", quantization: Quantization = "none",
             device: Optional[str] = None) -> LoadedLLM:
    """Load a causal LM from a folder or hub id, frozen and in eval mode.

    nf4 goes through bitsandbytes' `BitsAndBytesConfig` (its CPU backend works too); compute runs in `dtype`.
    """
    torch_dtype = getattr(torch, dtype)
    kwargs: dict = {"dtype": torch_dtype}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch_dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = device or ("auto" if torch.cuda.is_available() else "cpu")
    elif device:
        kwargs["device_map"] = device
    model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    _fix_special_tokens(tokenizer, model)
    model.eval().requires_grad_(False)
    return LoadedLLM(model=model, tokenizer=tokenizer)


def generation_kwargs(settings: GenerationSettings, tokenizer: PreTrainedTokenizerBase) -> dict:
    """`generate` arguments for greedy, beam or nucleus decoding."""
    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": settings.decoding == "nucleus",
        "num_beams": settings.num_beams if settings.decoding == "beam" else 1,
    }
    if settings.decoding == "nucleus":
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


class _CountingStreamer(TextIteratorStreamer):
    """Counts the generated tokens it is handed (the first `put` is the prompt, empty with inputs_embeds) and notes
    when the first one came: the text it yields waits for a word to end, one or more tokens later."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generated = 0
        self.first_token_at: Optional[float] = None
        self._seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if self._seen_prompt:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self.generated += value.numel()
        self._seen_prompt = True
        super().put(value)


def right_padded(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as one (B, longest) batch padded on the right with `pad_id`, and the mask of real tokens (1)."""
    longest = max(len(seq) for seq in ids)
    padded = torch.full((len(ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(ids), longest, dtype=torch.long)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return padded, mask


KeyValues = list[tuple[torch.Tensor, torch.Tensor]]
"""Each layer's (keys, values) of a prompt, kept to be shared by later calls."""


def cache_tensors(cache: DynamicCache) -> KeyValues:
    return [(layer.keys, layer.values) for layer in cache.layers]


def shared_cache(llm: LoadedLLM, key_values: KeyValues, batch: int = 1) -> DynamicCache:
    """A fresh cache over kept keys and values for `batch` rows: expanded views, not copies; the model concatenates
    new tokens onto them, so the kept tensors are never changed."""
    return DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in key_values],
                        config=llm.model.config)


class PrefixKVCache:
    """Keys and values of prompts' opening text (`AssembledInput.leading_ids`), kept for the few openings in use: the
    system turn and first cue are the same for most requests, so prefill starts after them. Thread-safe; entries
    are never changed (generation concatenates onto copies of the views it is given)."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self._entries: "OrderedDict[tuple, KeyValues]" = OrderedDict()
        self._lock = threading.Lock()

    def cache_for(self, llm: LoadedLLM, leading_ids: Optional[torch.Tensor],
                  prompt_length: int) -> Optional[DynamicCache]:
        """A fresh DynamicCache holding the opening's keys and values (computed on first use), or None when there
        is no opening or it is the whole prompt (generation needs at least one token of its own to start from)."""
        if leading_ids is None or not 0 < leading_ids.numel() < prompt_length:
            return None
        key = (id(llm.model), tuple(leading_ids.tolist()))
        with self._lock:
            layers = self._entries.get(key)
            if layers is not None:
                self._entries.move_to_end(key)
        if layers is None:
            with torch.inference_mode():
                out = llm.model(input_ids=leading_ids[None].to(llm.device), use_cache=True)
            layers = cache_tensors(out.past_key_values)
            with self._lock:
                self._entries[key] = layers
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return shared_cache(llm, layers)


def stream_generate(llm: LoadedLLM, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                    settings: GenerationSettings, stop: Optional[threading.Event] = None,
                    stats: Optional[dict] = None, prefix_cache: Optional[DynamicCache] = None) -> Iterator[str]:
    """Yield text pieces as tokens are produced (beam search yields once, at the end: beams only settle then).

    `stop` ends generation early (the app's stop button); the text produced so far is kept. So does closing the
    generator (a caller that stops reading): the worker thread must not go on using the model behind the caller's
    lock. `stats["tokens"]` receives the number of generated tokens (end-of-turn token included) and
    `stats["first_token_at"]` the `time.perf_counter()` of the first. `prefix_cache` holds the keys and values of
    the prompt's first tokens (`PrefixKVCache`), so prefill runs only after them; beam search, which copies its
    cache per beam, runs without.
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    abandoned = threading.Event()

    class _StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # noqa: ARG002
            return abandoned.is_set() or bool(stop is not None and stop.is_set())

    if stop is not None and stop.is_set():  # stopped while waiting (or optimising): generate would still make a token
        if stats is not None:
            stats.update(tokens=0, first_token_at=None)
        return
    torch.manual_seed(settings.seed)
    kwargs = generation_kwargs(settings, llm.tokenizer)
    kwargs.update(inputs_embeds=inputs_embeds.to(llm.device, llm.model.dtype),
                  attention_mask=attention_mask.to(llm.device),
                  stopping_criteria=StoppingCriteriaList([_StopOnEvent()]))
    if prefix_cache is not None and settings.decoding != "beam":
        kwargs["past_key_values"] = prefix_cache
    if settings.decoding == "beam":
        with torch.inference_mode():
            ids = llm.model.generate(**kwargs)
        if stats is not None:
            stats["tokens"] = int(ids.shape[1])  # one sequence, so no padding: the new tokens and the end token
            stats["first_token_at"] = time.perf_counter()
        yield llm.tokenizer.decode(ids[0], skip_special_tokens=True)
        return
    streamer = _CountingStreamer(llm.tokenizer, skip_prompt=False, skip_special_tokens=True, timeout=300)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                llm.model.generate(**kwargs, streamer=streamer)
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, name=GENERATE_THREAD_NAME, daemon=True)
    worker.start()
    try:
        for piece in streamer:
            if piece:
                yield piece
    finally:
        abandoned.set()  # a no-op when generation has ended; stops it at the next token when the caller left early
        worker.join()
        if stats is not None:
            stats["tokens"] = streamer.generated
            stats["first_token_at"] = streamer.first_token_at
    if errors:
        raise errors[0]


def greedy_batch(llm: LoadedLLM, prompts: list[torch.Tensor], max_new_tokens: int, batch_size: int = 16,
                 strip: bool = True) -> list[str]:
    """Greedy answers for prompts given as embeddings (length_i, width) of different lengths, `batch_size` at a
    time: left-padded with a mask, as decoder-only generation needs, so every row continues from its own end;
    `strip=False` keeps the completions' leading and trailing white space."""
    tokenizer = llm.tokenizer
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        rows = prompts[start:start + batch_size]
        longest = max(r.shape[0] for r in rows)
        embeds = rows[0].new_zeros(len(rows), longest, rows[0].shape[-1])
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, row in enumerate(rows):
            embeds[i, longest - row.shape[0]:] = row
            mask[i, longest - row.shape[0]:] = 1
        with torch.inference_mode():
            ids = llm.model.generate(inputs_embeds=embeds.to(llm.device, llm.model.dtype),
                                     attention_mask=mask.to(llm.device), max_new_tokens=max_new_tokens,
                                     do_sample=False, temperature=None, top_p=None, top_k=None,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        answers += [text.strip() if strip else text for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return answers
