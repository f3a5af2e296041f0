"""The instruction optimiser (VisLingInstruct): rewrite the question, score every wording, compose a final one.

Instruction Alignment Score (IAS): the mean negative log-likelihood of an instruction's tokens when the LLM has seen
the media and the meta-prompt ("Based on the image given, the most appropriate instruction should be:"); lower
means the wording fits the media better. Every candidate follows the same prefix, so the prefix runs through the LLM
once, its key/value cache is shared by the batch (expanded views, no copy), and all candidates are scored in one
forward pass.

Rewrites come from one batched, sampled generation with a few-shot rewrite prompt (text only: the small offline LLM
follows a plain completion pattern far better than a chat request); `core.rewrite_checks` drops those that ask
something else. Instruction Comparison Optimisation (ICO) then shows the original and the best rewrite, worse first,
as an in-context rewrite example and lets the LLM rewrite the better one once more; that final wording is kept only
when its IAS beats every candidate.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Optional

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from core.encoders.base import EncodedMedia
from core.llm import KeyValues, LoadedLLM, PrefixKVCache, cache_tensors, right_padded, shared_cache
from core.prompt import AssembledInput
from core.rewrite_checks import clean_rewrite, meaning_change, normalised
from core.schema import MODALITIES, GenerationSettings, InstructionCandidate, OptimizerTrace, checked_question

MEDIA_NAMES = {"image": "image", "audio": "audio clip", "video": "video", "points": "3D object"}

REWRITE_HEADER = (
    "Rewrite each question about the {media} so that it is clear, short and correctly spelled.\n"
    "Question: wht is the colr of the bus?\nRewrite: What is the color of the bus?\n"
    "Question: I was wondering whether you might be able to tell me how many dogs there are, if possible?\n"
    "Rewrite: How many dogs are there?\n"
    "Question: size boat\nRewrite: How big is the boat?\n"
    "Question: descibe this foto\nRewrite: Describe this photo.\n"
)
REWRITE_QUERY = "Question: {question}\nRewrite:"

_HEADER_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""LLM module -> {few-shot header text: (token ids, per-layer keys and values), _NEWLINES: line-break token ids};
the header never changes, so every request after the first skips it."""
_NEWLINES = "\n"

def media_phrase(modalities: list[str]) -> str:
    """'image', 'audio clip and video', ... in the canonical order; 'input' when no media are given."""
    names = [MEDIA_NAMES[m] for m in MODALITIES if m in modalities]
    if not names:
        return "input"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def meta_prompt(modalities: list[str]) -> str:
    """The reference's meta-prompt, naming the media actually given."""
    return f"Based on the {media_phrase(modalities)} given, the most appropriate instruction should be:"


def scoring_qformer_prompt(modalities: list[str]) -> str:
    """What the Q-Formers see while scoring: neutral, so no candidate's own wording shapes the media tokens."""
    return f"Describe the {media_phrase(modalities)}."


@dataclass
class OptimizerSettings:
    num_rewrites: int = 3
    max_instruction_tokens: int = 48
    """Rewrites longer than this, or than twice the original plus 8 tokens, are dropped as over-long."""
    temperature: float = 0.8
    top_p: float = 0.95


@dataclass
class ScoredInstruction:
    instruction: str
    ias: float
    token_nll: list[float]
    tokens: list[str]

    def candidate(self, source: str) -> InstructionCandidate:
        return InstructionCandidate(instruction=self.instruction, ias=self.ias, token_nll=self.token_nll,
                                    tokens=self.tokens, source=source)


class AlignmentScorer:
    """IAS for any number of instructions after one fixed prefix (media + meta-prompt), whose cache is kept."""

    def __init__(self, llm: LoadedLLM, prefix: AssembledInput, openings: Optional[PrefixKVCache] = None) -> None:
        """`openings`: the pipeline's cache of prompt openings; the prefix's (system turn, first cue) is the
        answers' too, so with it the prefill runs only after the opening."""
        self.llm = llm
        self.prefix_length = prefix.inputs_embeds.shape[1]
        opening = openings.cache_for(llm, prefix.leading_ids, self.prefix_length) if openings else None
        start = opening.get_seq_length() if opening is not None else 0
        with torch.inference_mode():
            out = llm.model(inputs_embeds=prefix.inputs_embeds[:, start:].to(llm.device),
                            attention_mask=prefix.attention_mask.to(llm.device), past_key_values=opening,
                            use_cache=True)
        self._prefix_kv = cache_tensors(out.past_key_values)
        self._first_log_probs = out.logits[0, -1].float().log_softmax(-1)

    def token_ids(self, instruction: str) -> list[int]:
        return self.llm.tokenizer(instruction, add_special_tokens=False).input_ids

    def score(self, instructions: list[str]) -> list[ScoredInstruction]:
        """One forward pass for all instructions: the prefix cache is expanded over the batch, candidates are
        right-padded and masked (padding sits after every real token, so causal attention never sees it)."""
        if not instructions:
            return []
        ids = [self.token_ids(text) for text in instructions]
        if any(not seq for seq in ids):
            raise ValueError("cannot score an empty instruction")
        batch = len(ids)
        padded, mask = right_padded(ids, self.llm.tokenizer.pad_token_id)
        padded, mask = padded.to(self.llm.device), mask.to(self.llm.device)
        cache = shared_cache(self.llm, self._prefix_kv, batch)
        attention = torch.cat([torch.ones(batch, self.prefix_length, dtype=torch.long, device=mask.device), mask], 1)
        with torch.inference_mode():
            logits = self.llm.model(inputs_embeds=self.llm.embed(padded), attention_mask=attention,
                                    past_key_values=cache, use_cache=True).logits
            # token 0 is predicted by the prefix's last position, token i by candidate position i - 1
            following = logits[:, :-1].float().log_softmax(-1).gather(-1, padded[:, 1:, None])[..., 0]
            first = self._first_log_probs[padded[:, 0]][:, None]
            nll = -torch.cat([first, following], dim=1)
        results = []
        for row, seq in enumerate(ids):
            values = nll[row, : len(seq)].tolist()
            results.append(ScoredInstruction(instruction=instructions[row], ias=sum(values) / len(values),
                                             token_nll=values,
                                             tokens=self.llm.tokenizer.convert_ids_to_tokens(seq)))
        return results


class _StopSwitch(StoppingCriteria):
    """Ends every row once the caller's stop switch is set (the user pressed Stop)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:  # noqa: ARG002
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)


class _LineEnd(StoppingCriteria):
    """Ends each row at its first line break (transformers' stop_strings rescans the whole vocabulary per call)."""

    def __init__(self, newline_ids: torch.Tensor) -> None:
        self.newline_ids = newline_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:  # noqa: ARG002
        return torch.isin(input_ids[:, -1], self.newline_ids)


class InstructionOptimizer:
    """Rewrite -> IAS for all candidates -> in-context comparison -> the lowest-IAS instruction, with every step kept.

    Cheap to construct (the pipeline makes one per request); the few-shot header cache lives with the LLM."""

    def __init__(self, model, settings: Optional[OptimizerSettings] = None,
                 openings: Optional[PrefixKVCache] = None) -> None:
        self.model = model
        self.llm: LoadedLLM = model.llm
        self.settings = settings or OptimizerSettings()
        self.openings = openings

    @torch.no_grad()
    def prefix(self, encoded: dict[str, EncodedMedia], settings: GenerationSettings) -> AssembledInput:
        """What every candidate follows: the media tokens (Q-Formers prompted neutrally) and the meta-prompt."""
        modalities = list(encoded)
        prompt = scoring_qformer_prompt(modalities)
        tokens = {m: self.model.media_tokens(m, e, prompt, settings).tokens.detach() for m, e in encoded.items()}
        return self.model.build_input(meta_prompt(modalities), tokens, [], prefix_cues=settings.prefix_cues)

    def scorer(self, encoded: dict[str, EncodedMedia], settings: GenerationSettings) -> AlignmentScorer:
        return AlignmentScorer(self.llm, self.prefix(encoded, settings), self.openings)

    def token_limit(self, question: str) -> int:
        original = len(self.llm.tokenizer(question, add_special_tokens=False).input_ids)
        return min(self.settings.max_instruction_tokens, 2 * original + 8)

    def _header_cache(self, header: str) -> tuple[torch.Tensor, KeyValues]:
        """Token ids and keys/values of a few-shot header, computed once per LLM and header text."""
        per_llm = _HEADER_CACHE.setdefault(self.llm.model, {})
        if header not in per_llm:
            ids = self.llm.tokenizer(header, add_special_tokens=False, return_tensors="pt").input_ids
            ids = ids.to(self.llm.device)
            with torch.inference_mode():
                cache = self.llm.model(input_ids=ids, use_cache=True).past_key_values
            per_llm[header] = (ids, cache_tensors(cache))
        return per_llm[header]

    def _newline_tokens(self) -> torch.Tensor:
        """Ids of every vocabulary token whose text holds a line break (found once per LLM)."""
        per_llm = _HEADER_CACHE.setdefault(self.llm.model, {})
        if _NEWLINES not in per_llm:
            tokenizer = self.llm.tokenizer
            texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            per_llm[_NEWLINES] = torch.tensor([i for i, text in enumerate(texts) if "\n" in text],
                                              device=self.llm.device)
        return per_llm[_NEWLINES]

    def _complete(self, header: str, query: str, limit: int, sample: bool, count: int, seed: int,
                  stop: Optional[threading.Event] = None) -> list[str]:
        """`count` completions of header + query in one generate call, stopping once every one has ended its line.

        The header's keys and values come from the cache and are shared by the `count` rows as views, so only the
        query is run before decoding (generate's `num_return_sequences` would run the whole prompt `count` times)."""
        tokenizer = self.llm.tokenizer
        header_ids, header_kv = self._header_cache(header)
        query_ids = tokenizer(query, add_special_tokens=False, return_tensors="pt").input_ids.to(self.llm.device)
        rows = torch.cat([header_ids, query_ids], dim=1).expand(count, -1)
        cache = shared_cache(self.llm, header_kv, count)
        kwargs = dict(max_new_tokens=limit + 1, do_sample=sample, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id,
                      stopping_criteria=StoppingCriteriaList([_LineEnd(self._newline_tokens())]
                                                             + ([_StopSwitch(stop)] if stop is not None else [])))
        if sample:
            kwargs.update(temperature=self.settings.temperature, top_p=self.settings.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.llm.model.generate(input_ids=rows, attention_mask=torch.ones_like(rows),
                                          past_key_values=cache, **kwargs)
        texts = []
        for row in out[:, rows.shape[1]:]:
            ended = bool((row == tokenizer.eos_token_id).any())
            text = tokenizer.decode(row, skip_special_tokens=True)
            texts.append(text + "\n" if ended and "\n" not in text else text)
        return texts

    def rewrite(self, question: str, modalities: list[str], seed: int = 0,
                stop: Optional[threading.Event] = None) -> tuple[list[str], dict[str, str]]:
        """Up to K distinct, on-topic rewrites from one batched sampled call, and why each other one was dropped."""
        limit = self.token_limit(question)
        generated = self._complete(REWRITE_HEADER.format(media=media_phrase(modalities)),
                                   REWRITE_QUERY.format(question=question), limit, sample=True,
                                   count=self.settings.num_rewrites, seed=seed, stop=stop)
        kept: list[str] = []
        dropped: dict[str, str] = {}
        seen = {normalised(question)}
        for text in generated:
            rewrite = clean_rewrite(text)
            reason = self.rejection(rewrite, question, seen, limit)
            if reason:
                dropped[(rewrite if rewrite is not None else text).strip() or "(empty)"] = reason
                continue
            seen.add(normalised(rewrite))
            kept.append(rewrite)
        return kept, dropped

    def rejection(self, rewrite: Optional[str], original: str, seen: set[str], limit: int) -> Optional[str]:
        """Why a rewrite cannot be a candidate, or None when it can."""
        if rewrite is None:
            return "over-long"
        if not normalised(rewrite):
            return "empty"
        if normalised(rewrite) in seen:
            return "duplicate"
        if len(self.llm.tokenizer(rewrite, add_special_tokens=False).input_ids) > limit:
            return "over-long"
        return meaning_change(rewrite, original)

    @staticmethod
    def comparison_query(worse: str, better: str) -> str:
        """ICO: the IAS ordering as an in-context example (worse -> better), then the better one to improve; it
        follows the rewrite header."""
        return REWRITE_QUERY.format(question=worse) + f" {better}\n" + REWRITE_QUERY.format(question=better)

    def optimize(self, question: str, encoded: dict[str, EncodedMedia],
                 settings: Optional[GenerationSettings] = None,
                 stop: Optional[threading.Event] = None) -> OptimizerTrace:
        """The trace of one optimisation; its final instruction is never empty (at worst, the original).

        Once `stop` is set, the step running ends at its next token and the later steps are skipped: the trace
        then holds what was scored so far (nothing, when the rewrites were cut) and says `stopped`."""
        settings = settings or GenerationSettings()
        question = checked_question(question)
        modalities = list(encoded)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        rewrites, dropped = self.rewrite(question, modalities, seed=settings.seed, stop=stop)
        timings["rewrite"] = time.perf_counter() - start
        if stop is not None and stop.is_set():  # cut rewrites would all read as over-long
            timings["total"] = time.perf_counter() - start
            return OptimizerTrace(candidates=[], in_context_prompt="", final_instruction=question,
                                  timings_s=timings, stopped=True)

        t = time.perf_counter()
        scorer = self.scorer(encoded, settings)
        scored = scorer.score([question] + rewrites)
        timings["score"] = time.perf_counter() - t
        candidates = [scored[0].candidate("original")] + [s.candidate("rewrite") for s in scored[1:]]
        best = min(scored, key=lambda s: s.ias)

        in_context_prompt, final = "", best.instruction
        if rewrites and not (stop is not None and stop.is_set()):
            t = time.perf_counter()
            best_rewrite = min(scored[1:], key=lambda s: s.ias)
            worse, better = sorted([scored[0], best_rewrite], key=lambda s: -s.ias)
            header = REWRITE_HEADER.format(media=media_phrase(modalities))
            query = self.comparison_query(worse.instruction, better.instruction)
            in_context_prompt = header + query
            limit = self.token_limit(better.instruction)
            composed = clean_rewrite(self._complete(header, query, limit, sample=False, count=1,
                                                    seed=settings.seed, stop=stop)[0])
            seen = {normalised(c.instruction) for c in candidates}
            reason = self.rejection(composed, question, seen, limit)
            timings["compare"] = time.perf_counter() - t
            if reason is None:
                t = time.perf_counter()
                composed_score = scorer.score([composed])[0]
                timings["score_final"] = time.perf_counter() - t
                candidates.append(composed_score.candidate("final"))
                if composed_score.ias < best.ias:
                    final = composed_score.instruction
            elif composed is not None and normalised(composed) and reason != "duplicate":
                dropped[composed] = f"final {reason}"
        timings["total"] = time.perf_counter() - start
        return OptimizerTrace(candidates=candidates, in_context_prompt=in_context_prompt, final_instruction=final,
                              timings_s=timings, rejected=dropped, stopped=stop is not None and stop.is_set())
