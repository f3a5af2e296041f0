"""Batched answer loss and greedy answers through the frozen LLM, reusing the constant prompt prefix's KV cache.

Every prompt of one modality starts with the same text (system prompt, start of the user turn, the modality's cue),
so its keys and values are computed once and shared by every batch; an example then costs only its media tokens,
its question and its answer. The text comes from `core.prompt.render_pieces` and each piece is tokenized on its
own, exactly as `XModalModel.build_input` does at inference, so training sees the sequence the app will feed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from core.llm import LoadedLLM, cache_tensors, shared_cache
from core.prompt import MediaSlot, PromptStyle, render_pieces


@dataclass
class PromptTemplate:
    """The prompt of one modality split at its media slot: constant prefix ids, question-dependent suffix."""

    prefix_ids: torch.Tensor
    modality: str
    prefix_cues: bool
    style: PromptStyle

    @classmethod
    def for_modality(cls, tokenizer, modality: str, prefix_cues: bool, style: PromptStyle) -> "PromptTemplate":
        prefix, _ = _split_at_slot(render_pieces("?", [modality], [], tokenizer, prefix_cues, style), modality)
        ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt").input_ids[0]
        return cls(prefix_ids=ids, modality=modality, prefix_cues=prefix_cues, style=style)

    def suffix_ids(self, tokenizer, question: str) -> torch.Tensor:
        """Token ids after the media slot: the question and the start of the assistant's turn."""
        pieces = render_pieces(question, [self.modality], [], tokenizer, self.prefix_cues, self.style)
        _, suffix = _split_at_slot(pieces, self.modality)
        return tokenizer(suffix, add_special_tokens=False, return_tensors="pt").input_ids[0]


def _split_at_slot(pieces: list, modality: str) -> tuple[str, str]:
    """(text before, text after) the single media slot of a one-modality, no-history prompt."""
    slots = [i for i, p in enumerate(pieces) if isinstance(p, MediaSlot)]
    if len(slots) != 1 or pieces[slots[0]].modality != modality:
        raise ValueError(f"expected exactly one {modality} slot in the prompt, got {pieces!r}")
    before = "".join(p for p in pieces[: slots[0]])
    after = "".join(p for p in pieces[slots[0] + 1:])
    return before, after


class PrefixCachedLLM:
    """The frozen LLM with the prefix of one prompt template already run (keys and values kept, no gradient)."""

    def __init__(self, llm: LoadedLLM, template: PromptTemplate) -> None:
        self.llm = llm
        self.template = template
        with torch.no_grad():
            out = llm.model.model(input_ids=template.prefix_ids[None].to(llm.device), use_cache=True)
        self._prefix_kv = cache_tensors(out.past_key_values)
        self.prefix_length = int(template.prefix_ids.shape[0])

    def _hidden(self, embeds: torch.Tensor, cache: DynamicCache, start: int) -> torch.Tensor:
        positions = torch.arange(start, start + embeds.shape[1], device=embeds.device)[None].expand(embeds.shape[0], -1)
        dtype = self.llm.model.get_input_embeddings().weight.dtype
        return self.llm.model.model(inputs_embeds=embeds.to(dtype), past_key_values=cache, position_ids=positions,
                                    use_cache=True).last_hidden_state

    def suffix_batch(self, media: torch.Tensor, suffixes: list[torch.Tensor],
                     answers: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded embeddings [media, suffix, answer] (B, S, width) and labels (-100 except answer tokens).

        Right padding needs no attention mask: under causal attention no real token sees the padding after it.
        """
        rows, labels = [], []
        for i, suffix in enumerate(suffixes):
            answer = answers[i] if answers is not None else suffix.new_zeros(0)
            text = torch.cat([suffix, answer]).to(self.llm.device)
            rows.append(torch.cat([media[i], self.llm.embed(text).to(media.dtype)]))
            label = torch.full((rows[-1].shape[0],), -100, dtype=torch.long)
            label[label.shape[0] - answer.shape[0]:] = answer
            labels.append(label)
        length = max(r.shape[0] for r in rows)
        embeds = media.new_zeros(len(rows), length, media.shape[-1])
        padded = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, (row, label) in enumerate(zip(rows, labels)):
            embeds[i, : row.shape[0]] = row
            padded[i, : label.shape[0]] = label
        return embeds, padded.to(media.device)

    def answer_loss(self, media: torch.Tensor, suffixes: list[torch.Tensor],
                    answers: list[torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over all answer tokens of the batch (each answer ends with the end-of-turn token).

        The LM head runs only where an answer token is predicted, which skips most of its 49k-wide matmul.
        """
        embeds, labels = self.suffix_batch(media, suffixes, answers)
        hidden = self._hidden(embeds, shared_cache(self.llm, self._prefix_kv, embeds.shape[0]), self.prefix_length)
        targets = labels[:, 1:]
        scored = targets != -100
        logits = self.llm.model.lm_head(hidden[:, :-1][scored]).float()
        return nn.functional.cross_entropy(logits, targets[scored])

    @torch.no_grad()
    def greedy_answers(self, media: torch.Tensor, suffixes: list[torch.Tensor], max_new_tokens: int = 12) -> list[str]:
        """Greedy decoding for a batch; rows are grouped by suffix length so no row needs padding or a mask."""
        eos = self.llm.tokenizer.eos_token_id
        answers: list[str] = [""] * len(suffixes)
        groups: dict[int, list[int]] = {}
        for i, suffix in enumerate(suffixes):
            groups.setdefault(int(suffix.shape[0]), []).append(i)
        for rows in groups.values():
            embeds, _ = self.suffix_batch(media[rows], [suffixes[i] for i in rows])
            cache = shared_cache(self.llm, self._prefix_kv, len(rows))
            hidden = self._hidden(embeds, cache, self.prefix_length)
            position = self.prefix_length + embeds.shape[1]
            produced = torch.empty(len(rows), 0, dtype=torch.long, device=embeds.device)
            done = torch.zeros(len(rows), dtype=torch.bool, device=embeds.device)
            for _ in range(max_new_tokens):
                token = self.llm.model.lm_head(hidden[:, -1]).argmax(-1)
                token = torch.where(done, torch.full_like(token, eos), token)
                produced = torch.cat([produced, token[:, None]], dim=1)
                done |= token == eos
                if bool(done.all()):
                    break
                hidden = self._hidden(self.llm.embed(token[:, None]).to(embeds.dtype), cache, position)
                position += 1
            for row, ids in zip(rows, produced.tolist()):
                answers[row] = self.llm.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return answers
