"""Assembly of the multimodal LLM input: chat template, modality prefix cues, media token slots, history.

The conversation is rendered to text with a sentinel where each modality's tokens go, split on the sentinels, and
each text piece is embedded with the LLM's own table; media embeddings are spliced in between. Media sit in the
current user turn, in the canonical order audio, video, 3D, image (the reference's), each behind its cue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch

from core.schema import MODALITIES

PREFIX_CUES = {"image": " image: ", "audio": " audio: ", "video": " video: ", "points": " 3d: "}
SYSTEM_PROMPT = "You are X-Modal Instruct. Answer questions about the given image, audio, video and 3D inputs briefly."
PromptStyle = Literal["chat_template", "vicuna"]

_SENTINEL = "\x00{}\x00"


@dataclass(frozen=True)
class MediaSlot:
    modality: str


Piece = Union[str, MediaSlot]


def render_pieces(question: str, modalities: list[str], history: list[tuple[str, str]], tokenizer,
                  prefix_cues: bool = True, style: PromptStyle = "chat_template",
                  system_prompt: str = SYSTEM_PROMPT, keep_order: bool = False) -> list[Piece]:
    """The whole prompt as text pieces and media slots, ending where the assistant's answer begins.

    Media sit in the canonical order unless `keep_order`, which keeps the order of `modalities`: a DisCRn pair's
    "first" input must come first whatever its modality, as in the reference's DisCRn prompts."""
    ordered = list(dict.fromkeys(modalities)) if keep_order else [m for m in MODALITIES if m in modalities]
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modality {sorted(unknown)[0]!r}; expected one of {MODALITIES}")
    media_text = "".join((PREFIX_CUES[m] if prefix_cues else "") + _SENTINEL.format(m) for m in ordered)
    user_content = (media_text + "\n" if media_text else "") + _without_sentinels(question).strip()
    history = [(_without_sentinels(user), _without_sentinels(assistant)) for user, assistant in history]
    if style == "chat_template":
        messages = [{"role": "system", "content": system_prompt}]
        for user, assistant in history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": user_content})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # the reference's Vicuna chat format
        turns = "".join(f"USER: {u}\nASSISTANT: {a}\n" for u, a in history)
        text = f"{system_prompt} {turns}USER: {user_content}\nASSISTANT:"
    pieces: list[Piece] = []
    for i, part in enumerate(text.split("\x00")):
        if i % 2 == 1:
            pieces.append(MediaSlot(part))
        elif part:
            pieces.append(part)
    return pieces


def _without_sentinels(text: str) -> str:
    """User text with NUL removed: a NUL in a question would be read as a media slot's boundary."""
    return text.replace("\x00", "")


@dataclass
class AssembledInput:
    inputs_embeds: torch.Tensor
    """(1, length, width)"""
    attention_mask: torch.Tensor
    media_spans: dict[str, tuple[int, int]]
    """Where each modality's tokens sit in the sequence (start, end)."""
    text_token_count: int
    leading_ids: Optional[torch.Tensor] = None
    """Token ids of the opening text piece (system turn, start of the user turn, first cue): the same for most
    prompts, so its keys and values can be reused (`core.llm.PrefixKVCache`)."""


def assemble(pieces: list[Piece], media_tokens: dict[str, torch.Tensor], tokenizer, embed) -> AssembledInput:
    """Embed text pieces with `embed` (the LLM's embedding lookup) and splice in media tokens (n, width) per slot."""
    chunks: list[torch.Tensor] = []
    spans: dict[str, tuple[int, int]] = {}
    position = 0
    text_tokens = 0
    leading_ids = None
    for piece in pieces:
        if isinstance(piece, MediaSlot):
            tokens = media_tokens[piece.modality]
            spans[piece.modality] = (position, position + tokens.shape[0])
        else:
            ids = tokenizer(piece, add_special_tokens=False, return_tensors="pt").input_ids[0]
            tokens = embed(ids)
            text_tokens += ids.shape[0]
            if position == 0:
                leading_ids = ids
        chunks.append(tokens)
        position += tokens.shape[0]
    embeds = torch.cat([c.to(chunks[0].dtype) for c in chunks], dim=0)[None]
    return AssembledInput(inputs_embeds=embeds, attention_mask=torch.ones(1, embeds.shape[1], dtype=torch.long),
                          media_spans=spans, text_token_count=text_tokens, leading_ids=leading_ids)
