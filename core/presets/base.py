"""What a preset names: the LLM and how to load it, the encoders, the Q-Former sizes and the trained checkpoints."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from core.prompt import PromptStyle


@dataclass
class Preset:
    name: str
    build: Callable[["Preset"], "object"]
    """Builds the `XModalModel` for this preset (each preset knows its own encoders)."""
    llm_dtype: str = "float32"
    quantization: str = "none"
    prompt_style: PromptStyle = "chat_template"
    num_video_frames: int = 4
    audio_segments: int = 2
    num_points: int = 1024
    checkpoint_dir: Optional[Path] = None
    requires_cuda: bool = False
    options: dict = field(default_factory=dict)
