"""BEATs: Kaldi fbank and its normalisation, the architecture's pieces, and loading the released checkpoint format."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.encoders.beats import (FBANK_MEAN, FBANK_STD, BEATs, BEATsAudioEncoder, BEATsConfig,
                                 GatedRelativeSelfAttention, beats_fbank, load_beats, relative_position_buckets)
from core.encoders.kaldi_fbank import kaldi_fbank
from core.reference_checkpoint import ReferenceCheckpointError
from reference_checkpoints import TINY_BEATS_CFG, beats_reference_state

DATA = Path(__file__).parent / "data"


def chirp(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.4 * np.sin(2 * np.pi * (100 * t + 5900 * t**2)) + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_fbank_matches_kaldi():
    """Reference frames made once by kaldi-native-fbank 1.22.4 (dither 0, 128 bins, no energy; otherwise Kaldi
    defaults, which torchaudio's kaldi.fbank shares) on `chirp()` in 16-bit scale. Bins more than 60 dB below
    their frame's peak are float32 round-off in either implementation (both differ from a float64 run there)."""
    reference = np.load(DATA / "kaldi_fbank_chirp.npy")
    ours = kaldi_fbank(torch.from_numpy(chirp() * 32768)).numpy()
    assert ours.shape == reference.shape == (48, 128)
    audible = reference > reference.max(axis=1, keepdims=True) - math.log(1e6)
    np.testing.assert_allclose(ours[audible], reference[audible], atol=1e-3)
    np.testing.assert_allclose(ours, reference, atol=0.5)


def test_fbank_normalisation_uses_the_reference_constants():
    assert (FBANK_MEAN, FBANK_STD) == (15.41663, 6.55582)
    samples = chirp()
    expected = (kaldi_fbank(torch.from_numpy(samples) * 2**15) - 15.41663) / (2 * 6.55582)
    torch.testing.assert_close(beats_fbank(samples), expected)
    # Silence hits the log floor everywhere: ln(float32 eps) = -15.9424, so (-15.9424 - 15.4166) / 13.1116.
    silent = beats_fbank(np.zeros(1600, dtype=np.float32))
    torch.testing.assert_close(silent, torch.full_like(silent, -2.39170), atol=1e-4, rtol=0)


def test_fbank_puts_a_tone_in_the_right_mel_bin():
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    peak = int(kaldi_fbank(torch.from_numpy(tone)).mean(0).argmax())
    mel = lambda f: 1127 * math.log(1 + f / 700)  # noqa: E731
    centre = mel(20) + (peak + 1) * (mel(8000) - mel(20)) / 129
    assert abs(centre - mel(1000)) < (mel(8000) - mel(20)) / 129


def test_relative_buckets_follow_the_t5_scheme():
    buckets = relative_position_buckets(1000, num_buckets=320, max_distance=800)
    assert buckets[0, 0] == 0 and buckets[5, 4] == 1 and buckets[4, 5] == 161
    assert buckets[0, 79] == 160 + 79 and buckets[0, 80] == 160 + 80
    assert buckets[0, 999] == 319 and buckets[999, 0] == 159


def test_shifted_attention_equals_plain_softmax_attention():
    config = BEATsConfig(**{k: v for k, v in TINY_BEATS_CFG.items() if k in BEATsConfig.__dataclass_fields__})
    attention = GatedRelativeSelfAttention(config)
    x, bias = torch.randn(2, 9, 32), torch.randn(4, 9, 9)
    with torch.no_grad():
        q, k, v = (proj(x).view(2, 9, 4, 8).transpose(1, 2) for proj in
                   (attention.q_proj, attention.k_proj, attention.v_proj))
        gate_a, gate_b = torch.sigmoid(attention.grep_linear(q).view(2, 4, 9, 2, 4).sum(-1)).chunk(2, dim=-1)
        gated_bias = (gate_a * (gate_b * attention.grep_a - 1) + 2) * bias
        plain = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + gated_bias, dim=-1) @ v
        expected = attention.out_proj(plain.transpose(1, 2).reshape(2, 9, 32))
        torch.testing.assert_close(attention(x, bias), expected)


def test_tiny_beats_forward_shapes():
    model = BEATs(BEATsConfig(**{k: v for k, v in TINY_BEATS_CFG.items() if k in BEATsConfig.__dataclass_fields__}))
    tokens = model.eval()(torch.randn(3, 64, 128))
    assert tokens.shape == (3, 4 * 8, 32)  # 64/16 time patches x 128/16 frequency patches
    assert torch.isfinite(tokens).all()


@pytest.fixture
def beats_file(tmp_path) -> Path:
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": TINY_BEATS_CFG, "model": beats_reference_state(TINY_BEATS_CFG)}, path)
    return path


def test_released_format_loads_by_name(beats_file):
    model = load_beats(beats_file)
    state = beats_reference_state(TINY_BEATS_CFG)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(model.encoder.pos_conv.weight_v, state["encoder.pos_conv.0.weight_v"])
    assert torch.equal(model.encoder.relative_attention_bias.weight,
                       state["encoder.layers.0.self_attn.relative_attention_bias.weight"])
    assert torch.equal(model.encoder.layers[1].self_attn.grep_a, state["encoder.layers.1.self_attn.grep_a"])
    # The kernel is what torch's own weight_norm(dim=2), which the reference used, makes of weight_g and weight_v.
    conv, x = model.encoder.pos_conv, torch.randn(1, 32, 20)
    kernel = torch._weight_norm(state["encoder.pos_conv.0.weight_v"], state["encoder.pos_conv.0.weight_g"], 2)
    expected = torch.nn.functional.conv1d(x, kernel, state["encoder.pos_conv.0.bias"], padding=4, groups=4)
    torch.testing.assert_close(conv(x), expected)


def test_encode_waveform_cuts_5_second_pieces(beats_file):
    encoder = BEATsAudioEncoder(load_beats(beats_file), segments=2)
    short = encoder.encode_waveform(chirp(3.0))
    assert short.tokens.shape == (2, 256, 32) and short.mask.all()
    assert short.segment_seconds == [(0.0, 2.98), (2.98, 2.98)]
    long = encoder.encode_waveform(np.tile(chirp(1.0), 12))
    assert long.tokens.shape[0] == 3 and long.segment_seconds[1] == (5.12, 10.24)
    with pytest.raises(ValueError, match="shorter than one 25 ms frame"):
        encoder.encode_waveform(np.zeros(100, dtype=np.float32))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("encoder.layers.1.fc2.bias"), "'encoder.layers.1.fc2.bias' is missing"),
    (lambda s: s.update({"encoder.layers.0.fc1.weight": torch.zeros(3, 3)}),
     r"'encoder.layers.0.fc1.weight' has shape \(3, 3\), this BEATs config expects \(64, 32\)"),
    (lambda s: s.update({"encoder.layers.0.self_attn.bias_k": torch.zeros(1)}),
     "unexpected BEATs weight 'encoder.layers.0.self_attn.bias_k'"),
])
def test_mismatched_checkpoint_is_refused(tmp_path, edit, message):
    state = beats_reference_state(TINY_BEATS_CFG)
    edit(state)
    torch.save({"cfg": TINY_BEATS_CFG, "model": state}, tmp_path / "b.pt")
    with pytest.raises(ReferenceCheckpointError, match=message):
        load_beats(tmp_path / "b.pt")


def test_not_a_beats_file_is_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(ReferenceCheckpointError, match="not a BEATs checkpoint"):
        load_beats(tmp_path / "x.pt")
    torch.save({"cfg": {**TINY_BEATS_CFG, "layer_norm_first": True}, "model": {}}, tmp_path / "y.pt")
    with pytest.raises(ReferenceCheckpointError, match="layer_norm_first=True"):
        load_beats(tmp_path / "y.pt")
