"""BEATs audio encoder (Chen et al. 2022), the one X-InstructBLIP's audio Q-Former was trained on.

Written from the published architecture so that the released `BEATs_iter3_plus_AS2M.pt` loads by name:
16x16 patches of a normalised 128-bin Kaldi fbank -> LayerNorm -> Linear(512, 768) -> a convolutional position
embedding -> 12 post-norm Transformer layers with DeepNorm residual scaling and a gated, bucketed relative position
bias shared by all layers. The reference cuts each clip's fbank into 512-frame pieces (5.12 s, 256 tokens each)
and runs one Q-Former pass per piece; `encode_waveform` does the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.encoders.base import EncodedMedia
from core.encoders.kaldi_fbank import kaldi_fbank
from core.reference_checkpoint import ReferenceCheckpointError, match_state_dict, read_reference_checkpoint

SAMPLE_RATE = 16000
FBANK_BINS = 128
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
FRAMES_PER_SECOND = 100
FRAMES_PER_SEGMENT = 512
"""The reference audio processor's `frame_length`: 5.12 s of fbank frames per Q-Former pass."""
ATTENTION_SHIFT = 32.0
"""The reference divides queries by 32 and rescales after subtracting the row maximum, to keep fp16 finite."""


@dataclass
class BEATsConfig:
    """The architecture fields of the checkpoint's `cfg`; defaults are BEATs iter3+ (AS2M)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True

    @classmethod
    def from_reference(cls, cfg: dict) -> "BEATsConfig":
        """Keep the fields that shape the network; refuse variants this implementation does not cover."""
        config = cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name in cfg})
        unsupported = []
        if config.activation_fn != "gelu":
            unsupported.append(f"activation_fn={config.activation_fn!r}")
        if config.layer_norm_first:
            unsupported.append("layer_norm_first=True")
        if not config.relative_position_embedding or not config.gru_rel_pos:
            unsupported.append("no gated relative position bias")
        if unsupported:
            raise ReferenceCheckpointError(f"BEATs variant not supported: {', '.join(unsupported)}")
        return config


def beats_fbank(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A mono 16 kHz waveform in [-1, 1] -> (frames, 128) fbank, normalised as BEATs expects."""
    samples = torch.as_tensor(np.asarray(waveform, dtype=np.float32)) * 2**15
    return (kaldi_fbank(samples, SAMPLE_RATE, FBANK_BINS) - FBANK_MEAN) / (2 * FBANK_STD)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """(length, length) T5-style bidirectional buckets: exact near the diagonal, logarithmic further out."""
    position = torch.arange(length)
    relative = position[None, :] - position[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    exact = half // 2
    far = exact + (torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return buckets + torch.where(distance < exact, distance, far)


class GatedRelativeSelfAttention(nn.Module):
    """Multi-head self-attention plus the shared relative bias, scaled per query by a learned gate (`grep_*`)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.heads = config.encoder_attention_heads
        self.head_dim = width // self.heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, self.heads, 1, 1))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        """x (B,T,C), position_bias (heads,T,T) -> (B,T,C)."""
        query = self._split(self.q_proj(x))
        key, value = self._split(self.k_proj(x)), self._split(self.v_proj(x))
        scores = (query * (self.head_dim**-0.5 / ATTENTION_SHIFT)) @ key.transpose(-1, -2)
        scores = (scores - scores.amax(dim=-1, keepdim=True)) * ATTENTION_SHIFT
        gates = torch.sigmoid(self.grep_linear(query).unflatten(-1, (2, 4)).sum(-1))
        gate_a, gate_b = gates.chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        weights = torch.softmax(scores + gate * position_bias.to(scores.dtype), dim=-1)
        return self.out_proj((weights @ value).transpose(1, 2).flatten(2))


class BEATsLayer(nn.Module):
    """Post-norm block; DeepNorm scales each residual branch's input by (2 * layers) ** 0.25."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.self_attn = GatedRelativeSelfAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, width)
        self.final_layer_norm = nn.LayerNorm(width)
        self.residual_scale = (2 * config.encoder_layers) ** 0.25 if config.deep_norm else 1.0

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.residual_scale + self.self_attn(x, position_bias))
        hidden = F.gelu(self.fc1(x).float()).to(x.dtype)
        return self.final_layer_norm(x * self.residual_scale + self.fc2(hidden))


class WeightNormConv1d(nn.Module):
    """Grouped 1-D convolution whose kernel is stored as direction `weight_v` and per-tap norm `weight_g`."""

    def __init__(self, width: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.padding = kernel_size // 2
        self.weight_v = nn.Parameter(torch.randn(width, width // groups, kernel_size) * 0.02)
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.weight_v.float().pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
        weight = (self.weight_g.float() * self.weight_v.float() / norm).to(x.dtype)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class BEATsEncoder(nn.Module):
    """Convolutional position embedding, LayerNorm, then the layers sharing one relative position table."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        self.config = config
        self.pos_conv = WeightNormConv1d(config.encoder_embed_dim, config.conv_pos, config.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(config.encoder_embed_dim)
        self.relative_attention_bias = nn.Embedding(config.num_buckets, config.encoder_attention_heads)
        self.layers = nn.ModuleList(BEATsLayer(config) for _ in range(config.encoder_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positional = self.pos_conv(x.transpose(1, 2))
        if self.config.conv_pos % 2 == 0:  # an even kernel with symmetric padding yields one extra step
            positional = positional[:, :, :-1]
        x = self.layer_norm(x + F.gelu(positional).transpose(1, 2))
        buckets = relative_position_buckets(x.shape[1], self.config.num_buckets, self.config.max_distance)
        position_bias = self.relative_attention_bias(buckets.to(x.device)).permute(2, 0, 1)
        for layer in self.layers:
            x = layer(x, position_bias)
        return x


class BEATs(nn.Module):
    """fbank (B, frames, 128) -> tokens (B, frames/16 * 8, 768), time-major (8 frequency patches per time step)."""

    def __init__(self, config: BEATsConfig | None = None) -> None:
        super().__init__()
        self.config = config or BEATsConfig()
        c = self.config
        self.patch_embedding = nn.Conv2d(1, c.embed_dim, kernel_size=c.input_patch_size,
                                         stride=c.input_patch_size, bias=c.conv_bias)
        self.layer_norm = nn.LayerNorm(c.embed_dim)
        self.post_extract_proj = nn.Linear(c.embed_dim, c.encoder_embed_dim) \
            if c.embed_dim != c.encoder_embed_dim else None
        self.encoder = BEATsEncoder(c)

    @property
    def width(self) -> int:
        return self.config.encoder_embed_dim

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        x = self.layer_norm(patches)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)


def _our_name(reference_name: str) -> str | None:
    """Reference parameter name -> ours; None for parts we do not use (the AudioSet classifier head)."""
    if reference_name.startswith("predictor."):
        return None
    name = reference_name.replace("encoder.pos_conv.0.", "encoder.pos_conv.")
    if ".self_attn.relative_attention_bias." in name:
        # The reference builds the table in layer 0 and shares it; saved files may repeat it under every layer.
        return "encoder.relative_attention_bias.weight" if name.startswith("encoder.layers.0.") else None
    return name


def load_beats(path: str | Path) -> BEATs:
    """A frozen BEATs from a released checkpoint (`{'cfg': {...}, 'model': state_dict}`), read without pickle code."""
    data = read_reference_checkpoint(path)
    if "cfg" not in data or "model" not in data:
        raise ReferenceCheckpointError(f"{path}: not a BEATs checkpoint (expected 'cfg' and 'model', "
                                       f"found {sorted(data)[:5]})")
    model = BEATs(BEATsConfig.from_reference(dict(data["cfg"])))
    named = [(reference_name, _our_name(reference_name), tensor) for reference_name, tensor in data["model"].items()]
    state = match_state_dict(path, "BEATs", model.state_dict(), [item for item in named if item[1] is not None])
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


class BEATsAudioEncoder(nn.Module):
    """Frozen BEATs for the GPU preset: a waveform becomes one pass of 256 tokens per 5.12 s piece."""

    def __init__(self, model: BEATs, segments: int = 2) -> None:
        super().__init__()
        self.model = model
        self.segments = segments

    @property
    def width(self) -> int:
        return self.model.width

    @torch.no_grad()
    def encode_waveform(self, waveform: np.ndarray) -> EncodedMedia:
        """At least `segments` pieces (zero-padded as the reference pads), more when the clip is longer."""
        fbank = beats_fbank(waveform)
        real_frames = fbank.shape[0]
        pieces = max(self.segments, math.ceil(real_frames / FRAMES_PER_SEGMENT))
        fbank = F.pad(fbank, (0, 0, 0, pieces * FRAMES_PER_SEGMENT - real_frames))
        parameter = next(self.model.parameters())
        batch = fbank.view(pieces, FRAMES_PER_SEGMENT, FBANK_BINS).to(parameter.device, parameter.dtype)
        tokens = self.model(batch)
        seconds = real_frames / FRAMES_PER_SECOND
        spans = [(min(i * FRAMES_PER_SEGMENT / FRAMES_PER_SECOND, seconds),
                  min((i + 1) * FRAMES_PER_SEGMENT / FRAMES_PER_SECOND, seconds)) for i in range(pieces)]
        return EncodedMedia(tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device),
                            segment_seconds=spans)
