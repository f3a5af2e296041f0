"""Preset registry: each preset is one small file; `available_presets` lists those whose sources resolve here."""
from __future__ import annotations

from typing import Callable

from core.presets.base import Preset
from core.presets.instructblip_7b import gpu_preset_allowed, instructblip_7b_preset
from core.presets.tiny import tiny_preset

PRESETS: dict[str, Callable[..., Preset]] = {
    "tiny": tiny_preset,
    "instructblip-7b": instructblip_7b_preset,
}


def get_preset(name: str, **overrides) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name](**overrides)


def available_presets() -> list[str]:
    """Presets that can run here: GPU presets only with CUDA, unless XMODAL_FORCE_GPU_PRESET=1."""
    return [name for name, make in PRESETS.items() if not make().requires_cuda or gpu_preset_allowed()]
