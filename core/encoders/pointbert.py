"""ULIP-2's PointBERT point-cloud encoder, the one X-InstructBLIP's 3D Q-Former was trained on.

Written from the published architecture so that a ULIP-2 PointBERT checkpoint loads by name: 8192 xyz points ->
512 farthest-point centres with their 32 nearest neighbours (centred) -> a mini-PointNet per group (shared
Conv1d/BatchNorm stack, max-pooled twice) -> Linear(256, 384) -> a [CLS] token plus one token per group, each with
a learned embedding of its centre added before every block -> 12 pre-norm Transformer blocks -> LayerNorm ->
[CLS ; max over groups] (768) -> ULIP's `pc_projection` (768 x 512). LAVIS hands the Q-Former that one 512-d
token, so `encode_cloud` does too; the whole cloud is then one "group" for attention drawing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.encoders.base import EncodedMedia
from core.encoders.pointcloud import group_points
from core.reference_checkpoint import match_state_dict, read_reference_checkpoint, unwrap_state_dict


@dataclass
class PointBERTConfig:
    """Defaults are ULIP-2 PointBERT (`PointTransformer_8192point.yaml`, ULIP embed_dim 512)."""

    num_points: int = 8192
    num_groups: int = 512
    group_size: int = 32
    group_width: int = 256
    """`encoder_dims`: the mini-PointNet's output."""
    width: int = 384
    """`trans_dim`"""
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    output_width: int = 512
    """ULIP's embedding size (`pc_projection` columns)."""


class MiniPointNet(nn.Module):
    """Per group: Conv1d(3,128)-BN-ReLU-Conv1d(128,256), max-pool, concat back, Conv1d(512,512)-BN-ReLU-Conv1d, max."""

    def __init__(self, out_width: int) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                         nn.Conv1d(512, out_width, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """(B, G, K, 3) centred neighbourhoods -> (B, G, out_width)."""
        b, g, k, _ = groups.shape
        feature = self.first_conv(groups.reshape(b * g, k, 3).transpose(1, 2))
        pooled = feature.amax(dim=2, keepdim=True)
        feature = self.second_conv(torch.cat([pooled.expand(-1, -1, k), feature], dim=1))
        return feature.amax(dim=2).reshape(b, g, -1)


class PointBlockAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


class PointBlockMlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class PointBlock(nn.Module):
    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width)
        self.attn = PointBlockAttention(config.width, config.num_heads)
        self.norm2 = nn.LayerNorm(config.width)
        self.mlp = PointBlockMlp(config.width, int(config.width * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PointBlocks(nn.Module):
    """The reference adds the position embedding to the input of every block, not only the first."""

    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(PointBlock(config) for _ in range(config.depth))

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x + position)
        return x


class PointTransformer(nn.Module):
    """ULIP's `point_encoder`: grouped points -> 768-d [CLS ; max-pooled groups] feature."""

    def __init__(self, config: PointBERTConfig) -> None:
        super().__init__()
        self.encoder = MiniPointNet(config.group_width)
        self.reduce_dim = nn.Linear(config.group_width, config.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, config.width))
        self.blocks = PointBlocks(config)
        self.norm = nn.LayerNorm(config.width)

    def forward(self, groups: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(B,G,K,3) centred neighbourhoods, (B,G,3) centres -> (B, 2 * width)."""
        tokens = self.reduce_dim(self.encoder(groups))
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        position = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centres)], dim=1)
        x = self.norm(self.blocks(x, position))
        return torch.cat([x[:, 0], x[:, 1:].amax(dim=1)], dim=-1)


class PointBERT(nn.Module):
    """`point_encoder` + `pc_projection`, as ULIP's `encode_pc`."""

    def __init__(self, config: PointBERTConfig | None = None) -> None:
        super().__init__()
        self.config = config or PointBERTConfig()
        self.point_encoder = PointTransformer(self.config)
        self.pc_projection = nn.Parameter(torch.randn(2 * self.config.width, self.config.output_width) * 0.02)

    @property
    def width(self) -> int:
        return self.config.output_width

    def group(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One cloud (N,3) -> centred neighbourhoods (G,K,3), centres (G,3), neighbour indices (G,K)."""
        centres, neighbours = group_points(xyz, self.config.num_groups, self.config.group_size)
        return xyz[neighbours] - centres[:, None, :], centres, neighbours

    def forward(self, groups: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(B,G,K,3), (B,G,3) -> (B, output_width)."""
        return self.point_encoder(groups, centres) @ self.pc_projection.to(groups.dtype)


def load_pointbert(path: str | Path, config: PointBERTConfig | None = None) -> PointBERT:
    """A frozen PointBERT from a ULIP checkpoint (`state_dict` with `module.point_encoder.*` and `pc_projection`).

    The text and image towers in the same file are ignored. ULIP saves its `argparse.Namespace` beside the
    weights; that one class is allowed, nothing else.
    """
    import argparse

    data = read_reference_checkpoint(path, allowed_classes=[argparse.Namespace])
    tensors = {k.removeprefix("module."): v for k, v in unwrap_state_dict(data, path).items()}
    model = PointBERT(config)
    wanted = ((name, name, tensor) for name, tensor in tensors.items()
              if name.startswith("point_encoder.") or name == "pc_projection")
    # BatchNorm's step counter is unused in eval mode and absent from files written by older PyTorch.
    state = match_state_dict(path, "PointBERT", model.state_dict(), wanted, optional=("num_batches_tracked",))
    model.load_state_dict(state, strict=False)
    return model.eval().requires_grad_(False)


class PointBERTEncoder(nn.Module):
    """Frozen PointBERT for the GPU preset: one unit-sphere cloud of `num_points` xyz points -> one 512-d token."""

    def __init__(self, model: PointBERT) -> None:
        super().__init__()
        self.model = model

    @property
    def width(self) -> int:
        return self.model.width

    @torch.no_grad()
    def encode_cloud(self, xyz: np.ndarray) -> EncodedMedia:
        """xyz only: ULIP-2's PointBERT in X-InstructBLIP does not read colour."""
        points = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32))
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"expected an (N, 3) point cloud, got shape {tuple(points.shape)}")
        if points.shape[0] < self.model.config.group_size:
            raise ValueError(f"the cloud has {points.shape[0]} points; PointBERT needs at least "
                             f"{self.model.config.group_size}")
        groups, centres, _ = self.model.group(points)
        parameter = self.model.pc_projection
        token = self.model(groups[None].to(parameter.device, parameter.dtype),
                           centres[None].to(parameter.device, parameter.dtype))
        return EncodedMedia(tokens=token[:, None, :], mask=torch.ones(1, 1, dtype=torch.bool, device=token.device),
                            group_centres=points.mean(dim=0, keepdim=True),
                            point_groups=torch.arange(points.shape[0])[None], points=points)
