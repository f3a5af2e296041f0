"""The warm-start objectives: media tokens that read as the LLM's own input embeddings of the caption's (and the
answer's) content words, trained without running the LLM."""
from __future__ import annotations

import torch
from torch import nn


WORD_OBJECTIVES = ("caption_embedding", "answer_embedding")


def word_target_text(example: dict, caption: str, objective: str) -> str:
    """What the media tokens of a word-embedding warm start should read as: the caption, with the answer first
    for a question (answer_embedding), since the LLM answers most readily from a context that states it."""
    if objective == "answer_embedding" and example["task"] != "caption":
        return f"{example['answer']} {caption}"
    return caption


FILLER_WORDS = frozenset({"a", "an", "the", "on", "at", "in", "and", "of", "with", "to"})


def caption_target_ids(tokenizer, captions: list[str], length: int) -> torch.Tensor:
    """(B, length) LLM token ids of each caption's content words ("two large black circles right small white car
    bottom"), cut or padded with "." to `length` tokens."""
    filler = tokenizer(".", add_special_tokens=False).input_ids[0]
    rows = []
    for caption in captions:
        words = " ".join(w for w in caption.lower().strip(" .").split() if w not in FILLER_WORDS)
        ids = tokenizer(" " + words, add_special_tokens=False).input_ids[:length]
        rows.append(ids + [filler] * (length - len(ids)))
    return torch.tensor(rows)


def caption_embedding_loss(llm, media: torch.Tensor, target_ids: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
    """Make each media token read as its target word: cross-entropy of the token's dot products with the input
    embeddings of the captions' vocabulary (as a tied LM head reads it; plain regression drifts to an average
    word; the vocabulary rather than all 49k tokens keeps it cheap), plus a mean squared error, relative to the
    embeddings' variance, that keeps it at the scale of a real word embedding."""
    table = llm.model.get_input_embeddings().weight
    target = table[target_ids].float()
    logits = media @ table[vocabulary].float().T
    classes = torch.searchsorted(vocabulary, target_ids)
    classify = nn.functional.cross_entropy(logits.flatten(0, 1), classes.flatten())
    return classify + (media - target).pow(2).mean() / target.var()
