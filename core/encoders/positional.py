"""Fixed sinusoidal position codes added to frozen encoder tokens.

A CNN feature map carries little absolute position once flattened; a parameter-free 2D code lets the Q-Former
answer "left or right?" without changing the frozen encoder.
"""
from __future__ import annotations

import math

import torch


def sinusoid_1d(positions: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) float positions -> (N, width) sin/cos code."""
    half = width // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angles = positions.float()[:, None] * freqs[None, :]
    code = torch.cat([angles.sin(), angles.cos()], dim=1)
    return torch.nn.functional.pad(code, (0, width - code.shape[1]))


def sinusoid_2d(height: int, width_cells: int, channels: int) -> torch.Tensor:
    """(height * width_cells, channels): half the channels code the row, half the column."""
    rows = torch.arange(height).repeat_interleave(width_cells)
    cols = torch.arange(width_cells).repeat(height)
    half = channels // 2
    return torch.cat([sinusoid_1d(rows, half), sinusoid_1d(cols, channels - half)], dim=1)


TEMPORAL_SCALE = 0.5
"""Amplitude of the temporal code, as the image encoder's position code."""


def join_passes(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., P, N, W) tokens and (..., P, N) mask -> one pass (..., 1, P*N, W): each pass's tokens get a fixed
    sinusoidal code of the pass index, so a single Q-Former pass knows which frame a token came from."""
    *lead, passes, length, width = tokens.shape
    code = sinusoid_1d(torch.arange(passes), width).to(tokens.device, tokens.dtype) * TEMPORAL_SCALE
    joined = (tokens + code[:, None, :]).reshape(*lead, 1, passes * length, width)
    return joined, mask.reshape(*lead, 1, passes * length)
