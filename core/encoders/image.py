"""Frozen EfficientNet-Lite0 image encoder: a 7x7x1280 feature map as 49 tokens (video frames reuse it)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from core.encoders.base import EncodedMedia
from core.encoders.positional import sinusoid_2d
from core.sources import efficientnet_lite0_weights

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class EfficientNetImageEncoder(torch.nn.Module):
    """ImageNet-trained EfficientNet-Lite0 without its head; frozen, eval mode, no gradients."""

    width = 1280
    image_size = 224
    position_scale = 0.5
    """Amplitude of the position code relative to the unit-variance sinusoid; features are O(1) after the Q-Former LN."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)
        self.register_buffer("position_code", sinusoid_2d(7, 7, self.width) * self.position_scale, persistent=False)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        arrays = [np.asarray(im.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC)) for im in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return (pixels - _MEAN) / _STD

    @torch.no_grad()
    def encode_images(self, images: list[Image.Image]) -> EncodedMedia:
        """Each image (or video frame) becomes one pass of 49 tokens."""
        features = self.net.extract_features(self.preprocess(images))  # (B, 1280, 7, 7)
        b, c, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2) + self.position_code[None]
        return EncodedMedia(tokens=tokens, mask=torch.ones(b, h * w, dtype=torch.bool), grid_hw=(h, w))
