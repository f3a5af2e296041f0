"""Frozen Whisper tiny.en encoder, run by `transformers`' WhisperEncoder on weights read from CTranslate2.

Whisper always encodes a 30 s window (1500 frames at 50 per second); the frames past the clip's real length are
dropped, and the rest is split into equal segments, one Q-Former pass each, as the reference does for audio.
"""
from __future__ import annotations

import numpy as np
import torch

from core.encoders.base import EncodedMedia
from core.encoders.ctranslate2_file import read_ctranslate2_variables
from core.sources import whisper_tiny_ct2

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 50
WINDOW_SECONDS = 30


def _whisper_state_dict(ct2: dict[str, np.ndarray], layers: int) -> dict[str, torch.Tensor]:
    """Map CTranslate2 names onto WhisperEncoder's; the fused qkv projection is split in three (k has no bias)."""
    t = lambda name: torch.from_numpy(ct2["encoder/" + name].copy())  # noqa: E731
    state = {
        "conv1.weight": t("conv1/weight"), "conv1.bias": t("conv1/bias"),
        "conv2.weight": t("conv2/weight"), "conv2.bias": t("conv2/bias"),
        "embed_positions.weight": t("position_encodings/encodings"),
        "layer_norm.weight": t("layer_norm/gamma"), "layer_norm.bias": t("layer_norm/beta"),
    }
    for i in range(layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        q, k, v = t(src + "self_attention/linear_0/weight").chunk(3, dim=0)
        qb, _kb, vb = t(src + "self_attention/linear_0/bias").chunk(3, dim=0)
        state.update({
            dst + "self_attn.q_proj.weight": q, dst + "self_attn.q_proj.bias": qb,
            dst + "self_attn.k_proj.weight": k,
            dst + "self_attn.v_proj.weight": v, dst + "self_attn.v_proj.bias": vb,
            dst + "self_attn.out_proj.weight": t(src + "self_attention/linear_1/weight"),
            dst + "self_attn.out_proj.bias": t(src + "self_attention/linear_1/bias"),
            dst + "self_attn_layer_norm.weight": t(src + "self_attention/layer_norm/gamma"),
            dst + "self_attn_layer_norm.bias": t(src + "self_attention/layer_norm/beta"),
            dst + "fc1.weight": t(src + "ffn/linear_0/weight"), dst + "fc1.bias": t(src + "ffn/linear_0/bias"),
            dst + "fc2.weight": t(src + "ffn/linear_1/weight"), dst + "fc2.bias": t(src + "ffn/linear_1/bias"),
            dst + "final_layer_norm.weight": t(src + "ffn/layer_norm/gamma"),
            dst + "final_layer_norm.bias": t(src + "ffn/layer_norm/beta"),
        })
    return state


class WhisperAudioEncoder(torch.nn.Module):
    """Whisper tiny.en encoder (384 wide, 4 layers); frozen."""

    width = 384

    def __init__(self, segments: int = 2) -> None:
        super().__init__()
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        ct2 = read_ctranslate2_variables(whisper_tiny_ct2(), prefix="encoder/")
        layers = sum(1 for k in ct2 if k.endswith("self_attention/linear_0/weight"))
        config = WhisperConfig(d_model=384, encoder_layers=layers, encoder_attention_heads=6,
                               encoder_ffn_dim=1536, num_mel_bins=80, max_source_positions=1500)
        config._attn_implementation = "sdpa"
        self.encoder = WhisperEncoder(config)
        self.encoder.load_state_dict(_whisper_state_dict(ct2, layers))
        self.encoder.eval().requires_grad_(False)
        self.features = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE)
        self.segments = segments

    @torch.no_grad()
    def encode_waveform(self, waveform: np.ndarray) -> EncodedMedia:
        """A mono 16 kHz clip (at most 30 s) -> `segments` passes over its real frames."""
        mel = self.features(waveform, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        frames = self.encoder(mel).last_hidden_state[0]  # (1500, 384)
        seconds = min(len(waveform) / SAMPLE_RATE, WINDOW_SECONDS)
        real = max(self.segments, min(frames.shape[0], int(np.ceil(seconds * FRAMES_PER_SECOND))))
        bounds = np.linspace(0, real, self.segments + 1).round().astype(int)
        longest = int(np.diff(bounds).max())
        tokens = frames.new_zeros(self.segments, longest, self.width)
        mask = torch.zeros(self.segments, longest, dtype=torch.bool)
        spans = []
        for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            tokens[s, : b - a] = frames[a:b]
            mask[s, : b - a] = True
            spans.append((float(a) / FRAMES_PER_SECOND, float(b) / FRAMES_PER_SECOND))
        return EncodedMedia(tokens=tokens, mask=mask, segment_seconds=spans)
