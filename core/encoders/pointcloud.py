"""Point-group encoder for 3D: farthest-point centres, k-nearest groups, a shared mini-PointNet per group.

It plays the role ULIP-2's PointBERT plays in the paper, at a size a CPU can pre-train. One token per group keeps
attention drawable on the points (LAVIS pools to one token; we do not).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from core.encoders.base import EncodedMedia
from core.media_points import farthest_point_sample


@dataclass
class PointGroupConfig:
    num_groups: int = 64
    group_size: int = 32
    width: int = 256
    use_rgb: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def group_points(xyz: torch.Tensor, num_groups: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (G,3) and the indices (G,K) of each centre's K nearest points (the same FPS the loader uses)."""
    chosen = farthest_point_sample(xyz.detach().cpu().numpy(), min(num_groups, xyz.shape[0]))
    centres = xyz[torch.from_numpy(chosen).to(xyz.device)]
    distances = torch.cdist(centres, xyz)
    neighbours = distances.topk(min(group_size, xyz.shape[0]), largest=False).indices
    return centres, neighbours


class PointGroupEncoder(nn.Module):
    """Mini-PointNet over each group's centred neighbourhood, plus an embedding of the centre's position."""

    def __init__(self, config: PointGroupConfig | None = None) -> None:
        super().__init__()
        self.config = config or PointGroupConfig()
        c = self.config
        in_channels = 6 if c.use_rgb else 3
        self.local = nn.Sequential(nn.Linear(in_channels, 64), nn.GELU(), nn.Linear(64, 128), nn.GELU(),
                                   nn.Linear(128, c.width))
        self.position = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, c.width))
        self.norm = nn.LayerNorm(c.width)

    @property
    def width(self) -> int:
        return self.config.width

    def group(self, xyz: torch.Tensor, rgb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Group features (G,K,C), centres (G,3) and neighbour indices (G,K) for one cloud."""
        centres, neighbours = group_points(xyz, self.config.num_groups, self.config.group_size)
        local = xyz[neighbours] - centres[:, None, :]
        if self.config.use_rgb:
            colour = rgb[neighbours] if rgb is not None else torch.full_like(local, 0.5)
            local = torch.cat([local, colour - 0.5], dim=-1)
        return local, centres, neighbours

    def forward(self, grouped: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(B,G,K,C), (B,G,3) -> (B,G,width) tokens."""
        return self.norm(self.local(grouped).max(dim=2).values + self.position(centres))

    @torch.no_grad()
    def encode_cloud(self, xyz: np.ndarray, rgb: np.ndarray | None) -> EncodedMedia:
        points = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32))
        colours = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)) if rgb is not None else None
        grouped, centres, neighbours = self.group(points, colours)
        tokens = self(grouped[None], centres[None])
        return EncodedMedia(tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool),
                            group_centres=centres, point_groups=neighbours, points=points)
