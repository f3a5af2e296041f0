"""Frozen encoders: shapes, frozen state, and that their outputs carry the media's content."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from core.encoders.audio import FRAMES_PER_SECOND, WhisperAudioEncoder, _whisper_state_dict
from core.encoders.ctranslate2_file import read_ctranslate2_variables
from core.encoders.image import EfficientNetImageEncoder
from core.encoders.pointcloud import PointGroupConfig, PointGroupEncoder, group_points
from core.sources import whisper_tiny_ct2


@pytest.fixture(scope="module")
def image_encoder():
    return EfficientNetImageEncoder()


@pytest.fixture(scope="module")
def audio_encoder():
    return WhisperAudioEncoder(segments=2)


def test_image_encoder_gives_49_tokens_per_image_and_is_frozen(image_encoder):
    out = image_encoder.encode_images([Image.new("RGB", (300, 200), "red"), Image.new("RGB", (64, 64), "blue")])
    assert out.tokens.shape == (2, 49, 1280)
    assert out.grid_hw == (7, 7)
    assert out.mask.all()
    assert not any(p.requires_grad for p in image_encoder.parameters())
    assert not torch.allclose(out.tokens[0], out.tokens[1])


def test_mid_level_tokens_are_the_head_tokens_followed_by_the_pooled_stride_16_block(image_encoder):
    images = [Image.new("RGB", (224, 224), (220, 30, 30)), Image.new("RGB", (300, 200), (240, 140, 20))]
    head = image_encoder.encode_images(images)
    both = image_encoder.encode_images(images, with_mid_level=True)
    width = image_encoder.width
    assert both.tokens.shape == (2, 49, image_encoder.token_width(True)) == (2, 49, width + 80)
    # position codes are fixed per width, so the token maps agree once the first image is subtracted
    assert torch.allclose(both.tokens[..., :width] - both.tokens[:1, ..., :width], head.tokens - head.tokens[:1],
                          atol=1e-4)
    seen = []
    hook = image_encoder.net._blocks[image_encoder.mid_level_block].register_forward_hook(
        lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        image_encoder.net.extract_features(image_encoder.preprocess(images))
    hook.remove()
    assert seen[0].shape[1:] == (80, 14, 14)
    pooled = torch.nn.functional.avg_pool2d(seen[0], 2).flatten(2).transpose(1, 2)
    assert torch.allclose(both.tokens[..., width:] - both.tokens[:1, ..., width:], pooled - pooled[:1], atol=1e-4)


def test_image_encoder_recognises_a_photo(image_encoder):
    """The ImageNet head (unused by us) still classifies a cat, so the weights and preprocessing are right."""
    from skimage import data

    pixels = image_encoder.preprocess([Image.fromarray(data.chelsea())])
    with torch.no_grad():
        top = image_encoder.net(pixels).argmax(-1).item()
    assert 281 <= top <= 285  # ImageNet's domestic cat classes


def test_ctranslate2_reader_splits_fused_attention():
    variables = read_ctranslate2_variables(whisper_tiny_ct2(), prefix="encoder/")
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    state = _whisper_state_dict(variables, layers=4)
    assert state["layers.0.self_attn.q_proj.weight"].shape == (384, 384)
    assert "layers.0.self_attn.k_proj.bias" not in state


def test_audio_encoder_keeps_only_the_clips_real_frames(audio_encoder):
    seconds = 3.0
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
    out = audio_encoder.encode_waveform(wave)
    assert out.tokens.shape[0] == 2 and out.tokens.shape[2] == 384
    assert int(out.mask.sum()) == int(seconds * FRAMES_PER_SECOND)
    assert out.segment_seconds[0][0] == 0.0 and out.segment_seconds[-1][1] == pytest.approx(seconds)


def test_audio_encoder_tells_a_tone_from_noise(audio_encoder):
    t = np.arange(32000) / 16000
    tone = audio_encoder.encode_waveform((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)).tokens
    noise = audio_encoder.encode_waveform(np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)).tokens
    tone2 = audio_encoder.encode_waveform((0.3 * np.sin(2 * np.pi * 445 * t)).astype(np.float32)).tokens
    assert (tone - tone2).abs().mean() < (tone - noise).abs().mean()


def test_point_encoder_makes_one_token_per_group():
    encoder = PointGroupEncoder(PointGroupConfig(num_groups=32, group_size=16, width=64)).eval()
    xyz = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    out = encoder.encode_cloud(xyz, rgb=None)
    assert out.tokens.shape == (1, 32, 64)
    assert out.group_centres.shape == (32, 3) and out.point_groups.shape == (32, 16)
    assert out.points.shape == (500, 3)


def test_groups_are_centred_on_spread_out_points_and_hold_their_neighbours():
    xyz = torch.cat([torch.zeros(100, 3), torch.tensor([[5.0, 0, 0], [-5.0, 0, 0]])])
    centres, neighbours = group_points(xyz, num_groups=3, group_size=4)
    assert {5.0, -5.0} <= set(centres[:, 0].tolist())
    for centre, group in zip(centres, neighbours):
        assert torch.equal(xyz[group[0]], centre)  # a centre is its own nearest neighbour
