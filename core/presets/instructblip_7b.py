"""The GPU preset: a 4-bit 7B LLM with Salesforce's trained InstructBLIP image Q-Former, plus audio and 3D from
X-InstructBLIP's checkpoints when the user supplies them.

Sources (each an option of the preset, or an environment variable):
- LLM `XMODAL_LLM` (default lmsys/vicuna-7b-v1.1, the LLM InstructBLIP-Vicuna-7B was trained with; any
  Hugging Face causal LM of the same width works), loaded in 4-bit nf4 with bf16 compute, `device_map="auto"`.
- `XMODAL_INSTRUCTBLIP` (default Salesforce/instructblip-vicuna-7b): EVA-CLIP ViT-g, the image Q-Former, its
  query tokens, projection and Q-Former tokenizer. Video frames go through the same Q-Former one by one
  (T x 32 tokens behind one cue), as the reference does.
- Optional X-InstructBLIP Q-Formers (`.pth` as released, or `.safetensors` from `python -m core.convert_xinstructblip`):
  `XMODAL_IMAGE_QFORMER`, `XMODAL_VIDEO_QFORMER`, `XMODAL_AUDIO_QFORMER` with `XMODAL_BEATS` (BEATs_iter3_plus_AS2M.pt),
  `XMODAL_PC_QFORMER` with `XMODAL_ULIP2` (ULIP-2 PointBERT checkpoint). Audio and 3D are offered only when both of
  their files are given.
Encoders and Q-Formers run in fp16 on the GPU. The preset is offered only with CUDA, or when
`XMODAL_FORCE_GPU_PRESET=1` (then it runs on the CPU in fp32, slowly).
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Optional

import torch

from core.presets.base import Preset

if TYPE_CHECKING:
    from core.qformer import QFormerSettings

log = logging.getLogger(__name__)

NAME = "instructblip-7b"
FORCE_ENV = "XMODAL_FORCE_GPU_PRESET"
SOURCE_OPTIONS = {
    "llm": ("XMODAL_LLM", "lmsys/vicuna-7b-v1.1"),
    "instructblip": ("XMODAL_INSTRUCTBLIP", "Salesforce/instructblip-vicuna-7b"),
    "image_qformer": ("XMODAL_IMAGE_QFORMER", None),
    "video_qformer": ("XMODAL_VIDEO_QFORMER", None),
    "audio_qformer": ("XMODAL_AUDIO_QFORMER", None),
    "beats": ("XMODAL_BEATS", None),
    "points_qformer": ("XMODAL_PC_QFORMER", None),
    "ulip2": ("XMODAL_ULIP2", None),
}
ENCODER_FILES = {"audio": ("audio_qformer", "beats"), "points": ("points_qformer", "ulip2")}


def xinstructblip_qformer(encoder_width: int) -> QFormerSettings:
    """X-InstructBLIP's Q-Former: BERT-base (12 x 768, 12 heads, FFN 3072), cross-attention every 2nd layer,
    32 queries, BERT's vocabulary plus [DEC]."""
    from core.qformer import QFormerSettings

    return QFormerSettings(encoder_width=encoder_width, num_query_tokens=32, hidden_size=768, num_layers=12,
                           num_heads=12, intermediate_size=3072, cross_attention_frequency=2,
                           max_instruction_tokens=128, vocab_size=30523, init_from_text_model=False)


def gpu_preset_allowed() -> bool:
    return torch.cuda.is_available() or os.environ.get(FORCE_ENV) == "1"


def _optional_bridge(preset: Preset, modality: str, encoder_width: int):
    from core.xinstructblip_import import load_bridge

    path = preset.options[f"{modality}_qformer"]
    if not path:
        return None
    base = preset.options.get("qformer_settings") or xinstructblip_qformer(encoder_width)
    return load_bridge(path, modality, expected=replace(base, encoder_width=encoder_width))


def build_instructblip_7b(preset: Preset):
    from transformers import AutoConfig, AutoTokenizer

    from core.encoders.beats import BEATsAudioEncoder, load_beats
    from core.encoders.eva_clip import EvaClipImageEncoder
    from core.encoders.pointbert import PointBERTEncoder, load_pointbert
    from core.llm import load_llm
    from core.model import XModalModel
    from core.salesforce_instructblip import read_instructblip_parts, unreachable
    from core.xinstructblip_import import build_bridge

    if not gpu_preset_allowed():
        raise ValueError(f"preset {NAME!r} needs a CUDA GPU (it is planned to fit in 12 GB, about 8-9 GB "
                         f"expected); set {FORCE_ENV}=1 to run it on the CPU anyway (slow, about 16 GB of memory)")
    options = preset.options
    for modality, (qformer_option, encoder_option) in ENCODER_FILES.items():
        given = [o for o in (qformer_option, encoder_option) if options[o]]
        if len(given) == 1:
            missing = qformer_option if given[0] == encoder_option else encoder_option
            raise ValueError(f"{modality} needs both {SOURCE_OPTIONS[qformer_option][0]} and "
                             f"{SOURCE_OPTIONS[encoder_option][0]}; {SOURCE_OPTIONS[missing][0]} is not set")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32

    # The user's own files first, the big downloads last: a wrong file stops the start in seconds.
    bridges, encoders, modules = {}, {}, {}
    if options["beats"]:
        audio = BEATsAudioEncoder(load_beats(options["beats"]), segments=preset.audio_segments)
        bridges["audio"], encoders["audio"], modules["audio"] = \
            _optional_bridge(preset, "audio", audio.width), audio.encode_waveform, audio
    if options["ulip2"]:
        points = PointBERTEncoder(load_pointbert(options["ulip2"], options.get("pointbert_config")))
        bridges["points"], encoders["points"], modules["points"] = \
            _optional_bridge(preset, "points", points.width), lambda cloud: points.encode_cloud(cloud.xyz), points
    parts = read_instructblip_parts(options["instructblip"])
    image = EvaClipImageEncoder(parts.vision_model)
    bridges["image"] = _optional_bridge(preset, "image", image.width) or build_bridge(parts.bridge).eval()
    bridges["video"] = _optional_bridge(preset, "video", image.width) or bridges["image"]
    encoders["image"] = lambda im: image.encode_images([im])
    encoders["video"] = lambda clip: image.encode_images(clip.frames)
    modules["image"] = image
    try:
        llm_width = AutoConfig.from_pretrained(options["llm"]).get_text_config().hidden_size
    except OSError as error:
        raise ValueError(unreachable(options["llm"], error)) from error
    for modality, bridge in bridges.items():
        if bridge.projection.out_features != llm_width:
            raise ValueError(f"the {modality} Q-Former projects to {bridge.projection.out_features} but the LLM "
                             f"{options['llm']!r} is {llm_width} wide")
    llm = load_llm(options["llm"], dtype=preset.llm_dtype, quantization=preset.quantization)
    for module in modules.values():
        module.to(device, dtype).eval().requires_grad_(False)
    for bridge in {id(b): b for b in bridges.values()}.values():
        bridge.to(device, dtype).eval().requires_grad_(False)
        bridge.baseline_trained = False
    tokenizer = AutoTokenizer.from_pretrained(options["instructblip"], subfolder="qformer_tokenizer",
                                              truncation_side="left")
    model = XModalModel(llm=llm, qformer_tokenizer=tokenizer, encoders=encoders, encoder_modules=modules,
                        bridges=bridges, prompt_style=preset.prompt_style)
    log.info("preset %s: %s on %s", NAME, ", ".join(bridges), device)
    return model.eval()


def instructblip_7b_preset(**overrides) -> Preset:
    """Options come from keyword arguments, else the environment variables above, else the defaults."""
    options: dict[str, Optional[object]] = {}
    for option, (env, default) in SOURCE_OPTIONS.items():
        options[option] = overrides.pop(option, None) or os.environ.get(env) or default
    options["qformer_settings"] = overrides.pop("qformer_settings", None)
    options["pointbert_config"] = overrides.pop("pointbert_config", None)
    values = dict(name=NAME, build=build_instructblip_7b, llm_dtype="bfloat16", quantization="nf4", prompt_style="vicuna",
                  num_video_frames=4, audio_segments=2, num_points=8192, requires_cuda=True, options=options)
    values.update(overrides)
    return Preset(**values)
