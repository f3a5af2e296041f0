"""The request and result types that the pipeline, CLI, app and tests exchange.

Kept apart from the model code so that the UI and tests can build requests without importing torch models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

MODALITIES = ("audio", "video", "points", "image")
"""Canonical modality order in the LLM input (the reference's audio, video, pc, image)."""

MAX_QUESTION_CHARS = 4000
"""Longer questions are refused: about 1,000 tokens, a few seconds of prefill on two CPU cores, where a pasted book
would hold the model for minutes and overrun the LLM's context."""

MAX_QUESTION_TOKENS = 1500
"""The same bound in the LLM's tokens, checked before the optimiser runs: 4,000 emoji are 12,000 tokens."""

Decoding = Literal["greedy", "beam", "nucleus"]
Projection = Literal["qformer", "linear"]


def checked_question(text: str, what: str = "the question") -> str:
    """The question (or `what` else the LLM or the Q-Formers read) without surrounding space; an empty or
    over-long one is refused with the reason."""
    question = text.strip()
    if not question:
        raise ValueError(f"{what} is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"{what} is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    return question


@dataclass
class GenerationSettings:
    """How the LLM decodes and how the media reach it. Defaults suit the offline preset."""

    decoding: Decoding = "greedy"
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    num_beams: int = 3
    prefix_cues: bool = True
    projection: Projection = "qformer"
    cmaa: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.decoding not in ("greedy", "beam", "nucleus"):
            raise ValueError(f"decoding must be greedy, beam or nucleus, not {self.decoding!r}")
        if self.projection not in ("qformer", "linear"):
            raise ValueError(f"projection must be qformer or linear, not {self.projection!r}")
        if self.cmaa and self.projection == "linear":
            raise ValueError("CMAA fuses the instruction into the Q-Former's tokens; it cannot be combined with "
                             "the linear projection")
        if not 1 <= self.max_new_tokens <= 1024:
            raise ValueError(f"max_new_tokens must be between 1 and 1024, not {self.max_new_tokens}")
        if not 0.0 < self.temperature <= 5.0:
            raise ValueError(f"temperature must be in (0, 5], not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if not 1.0 <= self.repetition_penalty <= 3.0:
            raise ValueError(f"repetition_penalty must be in [1, 3], not {self.repetition_penalty}")
        if not 1 <= self.num_beams <= 8:
            raise ValueError(f"num_beams must be between 1 and 8, not {self.num_beams}")


@dataclass
class AskRequest:
    """One user turn: a question, any subset of media files, earlier turns and settings."""

    question: str
    image: Optional[str] = None
    audio: Optional[str] = None
    video: Optional[str] = None
    points: Optional[str] = None
    history: list[tuple[str, str]] = field(default_factory=list)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    optimize: bool = False
    qformer_prompt: Optional[str] = None
    """Text the Q-Formers see instead of the question (the reference lets the two differ)."""

    def media_paths(self) -> dict[str, str]:
        """The media given, in canonical order."""
        return {m: getattr(self, m) for m in MODALITIES if getattr(self, m)}


@dataclass
class ModalityAttention:
    """Where one modality's Q-Former looked: cross-attention averaged over heads.

    `weights` has shape (passes, layers, queries, tokens): one pass per video frame or audio segment, else one.
    The field that places the token axis depends on the modality: `grid_hw` (images and video frames: tokens =
    h*w), `segment_seconds` (audio: tokens = encoder frames of each segment), `group_centres` with `points` (3D:
    tokens = point groups).
    """

    weights: np.ndarray
    grid_hw: Optional[tuple[int, int]] = None
    segment_seconds: Optional[list[tuple[float, float]]] = None
    group_centres: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None


@dataclass
class CmaaAttention:
    """CMAA's query x instruction-token attention for one modality."""

    weights: np.ndarray
    instruction_tokens: list[str]


@dataclass
class InstructionCandidate:
    instruction: str
    ias: float
    token_nll: list[float]
    tokens: list[str]
    source: str
    """"original", "rewrite" or "final"."""


@dataclass
class OptimizerTrace:
    """Every step of the instruction optimiser, so a researcher can see why the final instruction won."""

    candidates: list[InstructionCandidate]
    in_context_prompt: str
    final_instruction: str
    timings_s: dict[str, float]
    rejected: dict[str, str] = field(default_factory=dict)
    """Rewrites that never became candidates, each with the reason (empty, duplicate, over-long, off-topic,
    changes what is asked); a refused final composition's reason starts with "final"."""
    stopped: bool = False
    """The user stopped the request while the optimiser ran; the steps after that were skipped."""


@dataclass
class AskResult:
    answer: str
    instruction_used: str
    timings_s: dict[str, float]
    tokens_generated: int
    attention: dict[str, ModalityAttention] = field(default_factory=dict)
    cmaa_attention: dict[str, CmaaAttention] = field(default_factory=dict)
    optimizer: Optional[OptimizerTrace] = None
    history_turns_dropped: int = 0
    """The oldest earlier turns left out because the whole chat no longer fit in the LLM's context."""

    def to_json(self) -> dict:
        """The CLI's and API's JSON shape (attention maps are left out: they are for plots)."""
        out = {
            "answer": self.answer,
            "instruction_used": self.instruction_used,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "tokens_generated": self.tokens_generated,
            "history_turns_dropped": self.history_turns_dropped,
        }
        if self.optimizer is not None:
            out["candidates"] = [
                {"instruction": c.instruction, "ias": c.ias, "token_nll": c.token_nll, "source": c.source}
                for c in self.optimizer.candidates
            ]
            out["final_instruction"] = self.optimizer.final_instruction
            out["rejected_rewrites"] = self.optimizer.rejected
            out["optimizer_stopped"] = self.optimizer.stopped
            out["optimizer_timings_s"] = {k: round(v, 4) for k, v in self.optimizer.timings_s.items()}
        return out


@dataclass
class StreamEvent:
    """What `Pipeline.stream` yields: text deltas as they come, then one event carrying the full result."""

    delta: str = ""
    result: Optional[AskResult] = None
