"""What every frozen encoder returns: token sequences per pass, ready for the Q-Former's cross-attention."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class EncodedMedia:
    """Frozen-encoder output for one input.

    `tokens` is (passes, tokens, width): one pass per video frame or audio segment, else a single pass.
    `mask` is (passes, tokens), True where a token is real (audio segments can be shorter than the longest).
    The optional fields let attention maps be drawn back onto the media.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    grid_hw: Optional[tuple[int, int]] = None
    segment_seconds: Optional[list[tuple[float, float]]] = None
    group_centres: Optional[torch.Tensor] = None
    point_groups: Optional[torch.Tensor] = None
    points: Optional[torch.Tensor] = None
    extras: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory of every tensor held (the encoder cache's budget is counted in these)."""
        tensors = [self.tokens, self.mask, self.group_centres, self.point_groups, self.points]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)
