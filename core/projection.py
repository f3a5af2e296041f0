"""Into the LLM's width: the Q-Former's projection, and the linear-projection baseline the paper compares with.

The baseline skips the Q-Former: encoder tokens are layer-normed, average-pooled to as many tokens as the Q-Former
has queries (so both give the LLM the same sequence length), and mapped by one linear layer. It ignores the
instruction, which is exactly what the ablation measures.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class QueryProjection(nn.Linear):
    """Q-Former hidden size -> LLM width (`{m}_llm_proj` in the reference)."""


class LinearProjectionBaseline(nn.Module):
    def __init__(self, encoder_width: int, llm_width: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.norm = nn.LayerNorm(encoder_width)
        self.proj = nn.Linear(encoder_width, llm_width)

    def forward(self, encoder_tokens: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """(P,N,W) with mask (P,N) -> (P, num_tokens, llm_width); padding tokens never enter the pool."""
        pooled = []
        for tokens, mask in zip(encoder_tokens, encoder_mask):
            real = tokens[mask.bool()]
            pooled.append(F.adaptive_avg_pool1d(real.T[None], self.num_tokens)[0].T)
        return self.proj(self.norm(torch.stack(pooled)))
