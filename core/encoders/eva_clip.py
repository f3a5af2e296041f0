"""EVA-CLIP ViT-g, InstructBLIP's frozen image encoder, run by `transformers`' `InstructBlipVisionModel`.

The tokens stop before the model's final LayerNorm: in the reference that LayerNorm is a separate trained
module (`ln_vision`, X-InstructBLIP's `image_ln`), so it lives in the bridge as `encoder_norm`, and a checkpoint
that brings its own image Q-Former brings its own LayerNorm too. Video frames reuse this encoder, one pass each.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from core.encoders.base import EncodedMedia

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class EvaClipImageEncoder(torch.nn.Module):
    """Frozen; each image becomes one pass of [CLS] + a grid of patch tokens (1 + 16 x 16 at 224 px)."""

    def __init__(self, vision_model) -> None:
        super().__init__()
        self.vision = vision_model.eval().requires_grad_(False)
        config = vision_model.config
        self.width = config.hidden_size
        self.image_size = config.image_size
        self.grid = config.image_size // config.patch_size

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """Bicubic resize to the square input size and CLIP normalisation, as InstructBLIP's image processor does."""
        size = (self.image_size, self.image_size)
        arrays = [np.asarray(im.convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) / 255.0 for im in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        return (pixels - mean) / std

    @torch.no_grad()
    def encode_images(self, images: list[Image.Image]) -> EncodedMedia:
        parameter = next(self.vision.parameters())
        pixels = self.preprocess(images).to(parameter.device, parameter.dtype)
        tokens = self.vision.encoder(inputs_embeds=self.vision.embeddings(pixels)).last_hidden_state
        return EncodedMedia(tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device),
                            grid_hw=(self.grid, self.grid), extras={"leading_tokens": 1})
