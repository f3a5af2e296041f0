"""Instruction-aware Q-Former for one modality, built on `transformers`' InstructBlipQFormerModel.

Learned query tokens share self-attention with the instruction's tokens and cross-attend to the frozen encoder's
tokens (after a per-modality LayerNorm, as in X-InstructBLIP). The small offline Q-Former starts from
all-MiniLM-L6-v2, as BLIP-2 starts from BERT-base; its word and position embeddings and the text-side feed-forward
layers stay frozen at those weights, so a checkpoint stores only what training changes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn
from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel


@dataclass
class QFormerSettings:
    encoder_width: int
    num_query_tokens: int = 8
    hidden_size: int = 384
    num_layers: int = 2
    num_heads: int = 12
    intermediate_size: int = 1536
    cross_attention_frequency: int = 1
    max_instruction_tokens: int = 48
    vocab_size: int = 30522
    init_from_text_model: bool = True
    """Start embeddings, self-attention and FFNs from the text model (MiniLM); False gives a random init (tests)."""
    joint_passes: bool = False
    """One pass over all of an input's passes (video frames) at once, each pass's tokens marked by a fixed temporal
    code, instead of the reference's one pass each: lets the queries compare frames (motion) themselves."""

    def to_dict(self) -> dict:
        return asdict(self)

    def transformers_config(self) -> InstructBlipQFormerConfig:
        config = InstructBlipQFormerConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, intermediate_size=self.intermediate_size,
            cross_attention_frequency=self.cross_attention_frequency, encoder_hidden_size=self.encoder_width,
        )
        config._attn_implementation = "eager"  # eager keeps the attention weights we draw in the app
        return config


@dataclass
class QFormerOutput:
    query_states: torch.Tensor
    """(passes, queries, hidden)"""
    cross_attentions: Optional[torch.Tensor] = None
    """(passes, cross-attention layers, queries, encoder tokens), averaged over heads."""


def _text_model_state(settings: QFormerSettings) -> dict[str, torch.Tensor]:
    """MiniLM's BERT weights renamed onto the Q-Former; the query FFN starts as a copy of the text FFN."""
    from safetensors.torch import load_file

    from core.sources import minilm_folder

    bert = load_file(str(minilm_folder() / "model.safetensors"))
    state = {
        "embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
        # BERT adds token-type 0 to every position; folding it in keeps the text embeddings identical.
        "embeddings.position_embeddings.weight": bert["embeddings.position_embeddings.weight"]
        + bert["embeddings.token_type_embeddings.weight"][0],
        "embeddings.layernorm.weight": bert["embeddings.LayerNorm.weight"],
        "embeddings.layernorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    for i in range(settings.num_layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            for p in ("weight", "bias"):
                state[f"{dst}attention.attention.{part}.{p}"] = bert[f"{src}attention.self.{part}.{p}"]
        for p in ("weight", "bias"):
            state[f"{dst}attention.output.dense.{p}"] = bert[f"{src}attention.output.dense.{p}"]
            state[f"{dst}attention.output.LayerNorm.{p}"] = bert[f"{src}attention.output.LayerNorm.{p}"]
            for branch in ("intermediate", "intermediate_query"):
                state[f"{dst}{branch}.dense.{p}"] = bert[f"{src}intermediate.dense.{p}"]
            for branch in ("output", "output_query"):
                state[f"{dst}{branch}.dense.{p}"] = bert[f"{src}output.dense.{p}"]
                state[f"{dst}{branch}.LayerNorm.{p}"] = bert[f"{src}output.LayerNorm.{p}"]
    return state


FROZEN_QFORMER_PREFIXES = ("embeddings.word_embeddings.", "embeddings.position_embeddings.")
FROZEN_QFORMER_INFIXES = (".intermediate.dense.", ".output.dense.", ".output.LayerNorm.")


def _is_frozen_text_part(name: str) -> bool:
    """Word/position embeddings and the text-side FFN (not the query FFN, not attention outputs)."""
    if name.startswith(FROZEN_QFORMER_PREFIXES):
        return True
    return any(infix in name for infix in FROZEN_QFORMER_INFIXES) and ".attention." not in name \
        and ".crossattention." not in name


class InstructionAwareQFormer(nn.Module):
    """Encoder LayerNorm + query tokens + InstructBLIP Q-Former for one modality."""

    def __init__(self, settings: QFormerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.encoder_norm = nn.LayerNorm(settings.encoder_width)
        self.query_tokens = nn.Parameter(torch.randn(1, settings.num_query_tokens, settings.hidden_size) * 0.02)
        self.qformer = InstructBlipQFormerModel(settings.transformers_config())
        if settings.init_from_text_model:
            _, unexpected = self.qformer.load_state_dict(_text_model_state(settings), strict=False)
            if unexpected:
                raise RuntimeError(f"unexpected text-model keys: {unexpected[:3]}")
            for name, parameter in self.qformer.named_parameters():
                if _is_frozen_text_part(name):
                    parameter.requires_grad_(False)

    def forward(self, encoder_tokens: torch.Tensor, encoder_mask: torch.Tensor, instruction_ids: torch.Tensor,
                instruction_mask: torch.Tensor, output_attentions: bool = False) -> QFormerOutput:
        """One pass per row: encoder tokens (P,N,W), instruction ids (P,L) (the same instruction on every row)."""
        passes = encoder_tokens.shape[0]
        queries = self.query_tokens.expand(passes, -1, -1)
        query_mask = torch.ones(passes, queries.shape[1], dtype=instruction_mask.dtype, device=instruction_mask.device)
        output = self.qformer(
            input_ids=instruction_ids,
            attention_mask=torch.cat([query_mask, instruction_mask], dim=1),
            query_embeds=queries,
            encoder_hidden_states=self.encoder_norm(encoder_tokens),
            encoder_attention_mask=encoder_mask.long(),
            output_attentions=output_attentions,
        )
        states = output.last_hidden_state[:, : queries.shape[1]]
        cross = None
        if output_attentions and output.cross_attentions:
            cross = torch.stack([layer.mean(dim=1) for layer in output.cross_attentions], dim=1)
        return QFormerOutput(query_states=states, cross_attentions=cross)
