"""The offline default: SmolLM2-135M-Instruct, EfficientNet-Lite0, Whisper tiny.en and our point-group encoder.

Everything resolves from installed packages; the trained Q-Formers, baselines and the 3D encoder come from
`assets/checkpoints/tiny/` when present (until they are trained, the bridges are untrained and say so).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from core.presets.base import Preset

log = logging.getLogger(__name__)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "assets" / "checkpoints" / "tiny"
NUM_QUERY_TOKENS = 8
JOINT_PASSES = {"video"}
"""Modalities whose Q-Former sees all passes at once (QFormerSettings.joint_passes): with a 135M LLM, motion has to
be read by the queries, which only a joint pass over the frames can do."""
MID_LEVEL_FEATURES = {"image"}
"""Modalities whose EfficientNet tokens carry the hue-preserving mid-level block (core.encoders.image). Video's
bridges were trained on the head alone and keep it until they are retrained."""


def tiny_llm_folder() -> Path:
    """SmolLM2-135M as a transformers folder: de-quantised from the bundled GGUF on first use, then cached."""
    from core.llm import gguf_safetensors_cache
    from core.sources import cache_dir, smollm2_gguf

    return gguf_safetensors_cache(smollm2_gguf(), cache_dir() / "llm")


def build_tiny(preset: Preset):
    from transformers import AutoTokenizer

    from core.checkpoints import load_checkpoint
    from core.cmaa import load_cmaa
    from core.encoders.audio import WhisperAudioEncoder
    from core.encoders.image import EfficientNetImageEncoder
    from core.encoders.pointcloud import PointGroupEncoder
    from core.llm import load_llm
    from core.model import ModalityBridge, XModalModel
    from core.qformer import QFormerSettings
    from core.sources import minilm_folder

    llm = load_llm(tiny_llm_folder(), dtype=preset.llm_dtype, quantization=preset.quantization)
    image = EfficientNetImageEncoder()
    audio = WhisperAudioEncoder(segments=preset.audio_segments)
    points = PointGroupEncoder().eval().requires_grad_(False)
    checkpoint_dir = preset.checkpoint_dir
    encoder_path = checkpoint_dir / "points_encoder.safetensors" if checkpoint_dir else None
    if encoder_path is not None and encoder_path.is_file():
        points.requires_grad_(True)
        load_checkpoint(points, encoder_path, required=("",))
        points.requires_grad_(False)
    else:  # its features would mean nothing to a trained 3D bridge
        log.warning("no pre-trained 3D encoder at %s: 3D inputs go through an untrained point encoder", encoder_path)
    widths = {"image": image.token_width("image" in MID_LEVEL_FEATURES),
              "video": image.token_width("video" in MID_LEVEL_FEATURES), "audio": audio.width, "points": points.width}
    bridges = {}
    for modality, width in widths.items():
        path = checkpoint_dir / f"{modality}.safetensors" if checkpoint_dir else None
        settings = QFormerSettings(encoder_width=width, num_query_tokens=NUM_QUERY_TOKENS,
                                   joint_passes=modality in JOINT_PASSES)
        if path is not None and path.with_suffix(".json").is_file():
            settings = QFormerSettings(**json.loads(path.with_suffix(".json").read_text())["qformer"])
        bridge = ModalityBridge(settings, llm.width)
        if path is not None and path.is_file():
            bridge.load_trained(path)  # one file holds both projections; the baseline may not be trained yet
        else:
            log.warning("no trained %s bridge at %s: its Q-Former is untrained", modality, path)
            bridge.baseline_trained = False  # refused by name rather than run at random
        cmaa_path = checkpoint_dir / f"{modality}_cmaa.safetensors" if checkpoint_dir else None
        if cmaa_path is not None and cmaa_path.is_file():
            try:
                bridge.cmaa = load_cmaa(cmaa_path, llm.width, bridge_file=path if path and path.is_file() else None)
            except ValueError as error:
                log.warning("CMAA for %s left off: %s", modality, error)
        bridges[modality] = bridge.eval()
    encoders = {
        "image": lambda im: image.encode_images([im], with_mid_level="image" in MID_LEVEL_FEATURES),
        "video": lambda clip: image.encode_images(clip.frames, with_mid_level="video" in MID_LEVEL_FEATURES),
        "audio": audio.encode_waveform,
        "points": lambda cloud: points.encode_cloud(cloud.xyz, cloud.rgb),
    }
    model = XModalModel(llm=llm, qformer_tokenizer=AutoTokenizer.from_pretrained(str(minilm_folder())),
                        encoders=encoders, encoder_modules={"image": image, "audio": audio, "points": points},
                        bridges=bridges, prompt_style=preset.prompt_style)
    return model.eval()


def tiny_preset(**overrides) -> Preset:
    values = dict(name="tiny", build=build_tiny, checkpoint_dir=CHECKPOINTS)
    values.update(overrides)
    return Preset(**values)
