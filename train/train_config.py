"""What a bridge training run is: its config (the JSON files of train/configs/), the learning-rate schedule it
implies, and which changes a resumed run may make to it without becoming another run."""
from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Optional

from core.schema import MODALITIES
from train.word_targets import WORD_OBJECTIVES


@dataclass
class TrainConfig:
    modality: str
    features: str
    """Cached features of the training split (train/features.py)."""
    instructions: str
    """Instruction examples for those features (train/qa_gen.py)."""
    out: str
    train_samples: Optional[int] = None
    """Train on the first N samples of the features only: the shipped image bridges learn from the first 6,000
    pictures even when the set holds more (the larger-set experiment of train/RESULTS.md)."""
    projection: str = "qformer"
    objective: str = "answer"
    """"answer": cross-entropy on the answer tokens through the frozen LLM (the paper's loss).
    "caption_embedding": a cheap warm start without the LLM: the media tokens regress the LLM's own input
    embeddings of the caption's content words (see `caption_target_ids`), so the LLM reads them like text.
    "answer_embedding": the same, conditioned on the question: the answer's words come first, then the caption's
    (captioning examples keep the caption alone), so the Q-Former learns to pick what the question asks for."""
    init_from: Optional[str] = None
    """A bridge checkpoint to start from (e.g. the caption_embedding stage's export)."""
    export: Optional[str] = None
    """Where the finished bridge goes (merged with what that file already holds for the other projection)."""
    cmaa: bool = False
    """Train only a new Cross-Modal Alignment Attention (VisLingInstruct) on the frozen `init_from` bridge's
    Q-Former tokens; the export is then the CMAA file alone (`<modality>_cmaa.safetensors`)."""
    cmaa_hidden: Optional[int] = None
    """CMAA's hidden width (default: the LLM width)."""
    steps: int = 200
    continued_from: tuple[int, ...] = ()
    """Steps at which this run once ended and was resumed with a larger `steps`: the cosine ran over each of these
    ends in turn, then over `steps` (each resume stretches it to the new end). Lets one config reproduce a run that
    was trained on after it finished."""
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 10
    checkpoint_every: int = 25
    seed: int = 0
    prefix_cues: bool = True
    prompt_style: str = "chat_template"
    num_query_tokens: int = 8
    joint_passes: bool = False
    """One Q-Former pass over all of a sample's passes (video frames); see QFormerSettings.joint_passes."""
    mixed_precision: str = "no"
    snapshot_steps: tuple[int, ...] = ()
    """Steps whose bridge is also kept as `<out>/step_<n>.safetensors` (for learning curves and ablations at an
    equal budget)."""
    max_minutes: Optional[float] = None
    """Stop (after saving) once this much wall time has passed in this run; a rerun continues."""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {self.modality!r}")
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {getattr(self, name)!r}")
        if self.objective not in ("answer", *WORD_OBJECTIVES):
            raise ValueError(f"objective must be answer, {' or '.join(WORD_OBJECTIVES)}, not {self.objective!r}")
        if list(self.continued_from) != sorted(set(self.continued_from)) or any(
                not 0 < end < self.steps for end in self.continued_from):
            raise ValueError(f"continued_from must be increasing steps below steps={self.steps}, "
                             f"not {list(self.continued_from)}")
        if self.cmaa and (self.projection != "qformer" or not self.init_from or self.objective != "answer"):
            raise ValueError("CMAA trains with the answer loss on a trained Q-Former: set projection qformer, "
                             "objective answer and init_from the bridge checkpoint")

    @classmethod
    def from_json(cls, path: Path, **overrides) -> "TrainConfig":
        """The config file's values, with the command line's non-None overrides on top; every problem with the
        file (missing, not JSON, unknown or missing keys, bad values) is a ValueError that names it."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except OSError as error:
            raise ValueError(f"cannot read the config {path}: {error.strerror or error}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object of config keys")
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        missing = [f.name for f in fields(cls) if f.name not in values and f.default is MISSING]
        if missing:
            raise ValueError(f"{path}: missing config keys {missing}")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def warmup_cosine(warmup: int, ends: tuple[int, ...]):
    """Linear warm-up, then a cosine down to 10% that ends at the first of `ends` not yet passed (the learning
    rate for step s + 1 is set after step s, so the step at an end still belongs to that end's cosine)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        total = next((end for end in ends if step <= end), ends[-1])
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


RESUMABLE_CHANGES = ("out", "steps", "continued_from", "max_minutes", "snapshot_steps", "checkpoint_every", "export")
"""Config keys a resumed run may change: how long it runs and what it keeps on the way, not what it learns (`out`
is where the state was found, however the command spelled it)."""


def check_resumable(saved: dict, config: TrainConfig, step: int, state: Path) -> None:
    """Refuse to resume a saved state under a config that trains something else, so an edit to the config file
    (or a second config sharing its `out`) cannot silently continue another run, nor record a `continued_from`
    other than the schedule it followed (the scheduler keeps the config's ends, so a change would also bend it)."""
    current = json.loads(json.dumps(asdict(config)))  # tuples as JSON lists, like the saved copy
    changed = sorted(k for k in saved if k in current and k not in RESUMABLE_CHANGES and saved[k] != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"{state} was trained with another config ({details}); use a new --out, or delete the "
                         f"state to start over")
    if step > config.steps:
        raise ValueError(f"{state} is at step {step}, past steps={config.steps}")
    if step < saved["steps"] != config.steps:
        raise ValueError(f"{state} is at step {step} of a run set to {saved['steps']} steps, whose learning-rate "
                         f"cosine is laid out for that end: finish it first (--steps {saved['steps']}), then a rerun "
                         f"with more steps continues it with the schedule recorded; or use a new --out")
    saved_ends = set(saved.get("continued_from", ()))
    invented = sorted(set(config.continued_from) - set(continued_ends(saved, config, step)))
    if invented:
        raise ValueError(f"{state}: continued_from {invented} names ends its run never had (it trained to step {step} "
                         f"under continued_from {sorted(saved_ends)}), so the record would claim a schedule it did "
                         f"not follow; use a new --out to train under that one")
    dropped = sorted(end for end in saved_ends - set(config.continued_from) if end > step)
    if dropped:
        raise ValueError(f"{state}: its run's cosine still ends at step {dropped[0]} (continued_from "
                         f"{sorted(saved_ends)}), which this config drops; keep that continued_from, or use a new "
                         f"--out")


def continued_ends(saved: dict, config: TrainConfig, step: int) -> tuple[int, ...]:
    """The `continued_from` this resumed run has trained under: the saved run's ends, plus its own end when it had
    finished and `steps` now goes past it, so the state and the export record a schedule that a fresh run of their
    config reproduces (a `--steps` override alone would record none). `check_resumable` refuses a config whose
    `continued_from` names any other end."""
    ends = set(saved.get("continued_from", ()))
    if step == saved["steps"] < config.steps:
        ends.add(step)
    return tuple(sorted(ends))
