"""Import of X-InstructBLIP's released per-modality checkpoints onto our `ModalityBridge`.

A reference `.pth` holds, for each trained modality m (image, video, audio, pc), `m_Qformer.bert.*` (a BERT-base
Q-Former with cross-attention every 2nd layer and separate query FFNs), `m_query_tokens`, `m_ln.*` (LayerNorm on
the frozen encoder's output) and `m_llm_proj.*`. transformers' InstructBLIP Q-Former has the same tensors under
slightly different names (DESIGN section 6); the reference's `position_ids` buffer and any `cls.*` head are not
parameters and are dropped. Every tensor the bridge needs must be present with the right shape: the first one
that is not is named in the error, so a wrong or truncated file never loads half-way.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional

import torch

from core.model import ModalityBridge
from core.qformer import QFormerSettings
from core.reference_checkpoint import ReferenceCheckpointError, read_reference_checkpoint, unwrap_state_dict

REFERENCE_PREFIXES = {"image": "image", "video": "video", "audio": "audio", "points": "pc"}
"""Our modality name -> the reference's key prefix."""
REFERENCE_MAX_INSTRUCTION_TOKENS = 128
"""The reference's `max_txt_len` for the Q-Former's instruction."""
_DROPPED_QFORMER_PARTS = ("bert.embeddings.position_ids", "cls.")
_SIZE_FIELDS = ("encoder_width", "num_query_tokens", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                "cross_attention_frequency", "vocab_size")
_LAYER = re.compile(r"\.encoder\.layer\.(\d+)\.")


class XInstructBlipImportError(ReferenceCheckpointError):
    """A reference checkpoint does not fit the bridge it should fill."""


@dataclass
class ImportedBridge:
    modality: str
    settings: QFormerSettings
    llm_width: int
    state: dict[str, torch.Tensor]
    """Tensors under `ModalityBridge` names (`qformer.qformer.*`, `qformer.query_tokens`, ...)."""
    source: str
    ignored: list[str] = field(default_factory=list)
    """Keys of the file that belong to no bridge imported (frozen-encoder buffers, other modalities)."""


def reference_key(bridge_key: str, prefix: str) -> str:
    """Our bridge parameter name -> the reference checkpoint's key."""
    if bridge_key.startswith("qformer.qformer."):
        inner = bridge_key.removeprefix("qformer.qformer.")
        inner = inner.replace("attention.attention.", "attention.self.")
        inner = inner.replace("embeddings.layernorm.", "embeddings.LayerNorm.")
        return f"{prefix}_Qformer.bert.{inner}"
    if bridge_key == "qformer.query_tokens":
        return f"{prefix}_query_tokens"
    if bridge_key.startswith("qformer.encoder_norm."):
        return f"{prefix}_ln.{bridge_key.removeprefix('qformer.encoder_norm.')}"
    if bridge_key.startswith("projection."):
        return f"{prefix}_llm_proj.{bridge_key.removeprefix('projection.')}"
    raise KeyError(f"{bridge_key} has no counterpart in X-InstructBLIP checkpoints")


def _belongs_to(key: str, prefix: str) -> bool:
    return key.startswith((f"{prefix}_Qformer.", f"{prefix}_ln.", f"{prefix}_llm_proj.")) \
        or key == f"{prefix}_query_tokens"


def _is_dropped(key: str, prefix: str) -> bool:
    return key.startswith(tuple(f"{prefix}_Qformer.{part}" for part in _DROPPED_QFORMER_PARTS))


def bridge_shapes(settings: QFormerSettings, llm_width: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors a reference checkpoint fills (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        bridge = ModalityBridge(settings, llm_width)
    shapes = {f"qformer.{k}": tuple(v.shape) for k, v in bridge.qformer.state_dict().items()}
    shapes.update({f"projection.{k}": tuple(v.shape) for k, v in bridge.projection.state_dict().items()})
    return shapes


def _required(tensors: dict[str, torch.Tensor], key: str, path: Path, why: str) -> torch.Tensor:
    if key not in tensors:
        raise XInstructBlipImportError(f"{path}: {key} is missing (needed to read {why})")
    return tensors[key]


def infer_settings(tensors: dict[str, torch.Tensor], prefix: str, path: Path,
                   num_heads: int = 12) -> tuple[QFormerSettings, int]:
    """Q-Former sizes and the LLM width read from the tensors' shapes (heads cannot be read; BERT-base has 12)."""
    queries = _required(tensors, f"{prefix}_query_tokens", path, "the number of queries")
    norm = _required(tensors, f"{prefix}_ln.weight", path, "the encoder width")
    words = _required(tensors, f"{prefix}_Qformer.bert.embeddings.word_embeddings.weight", path, "the vocabulary")
    ffn = _required(tensors, f"{prefix}_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight", path,
                    "the feed-forward width")
    projection = _required(tensors, f"{prefix}_llm_proj.weight", path, "the LLM width")
    layers = sorted({int(m.group(1)) for k in tensors if k.startswith(f"{prefix}_Qformer.")
                     for m in [_LAYER.search(k)] if m})
    cross = sorted({int(m.group(1)) for k in tensors if k.startswith(f"{prefix}_Qformer.") and ".crossattention." in k
                    for m in [_LAYER.search(k)] if m})
    if not cross:
        raise XInstructBlipImportError(f"{path}: {prefix}_Qformer has no crossattention layers")
    hidden = queries.shape[-1]
    if hidden % num_heads:
        raise XInstructBlipImportError(f"{path}: hidden size {hidden} is not divisible by {num_heads} heads")
    settings = QFormerSettings(
        encoder_width=norm.shape[0], num_query_tokens=queries.shape[1], hidden_size=hidden,
        num_layers=layers[-1] + 1, num_heads=num_heads, intermediate_size=ffn.shape[0],
        cross_attention_frequency=cross[1] if len(cross) > 1 else layers[-1] + 1,
        max_instruction_tokens=REFERENCE_MAX_INSTRUCTION_TOKENS, vocab_size=words.shape[0],
        init_from_text_model=False,
    )
    return settings, projection.shape[0]


def _check_and_rename(tensors: dict[str, torch.Tensor], prefix: str, settings: QFormerSettings, llm_width: int,
                      path: Path, origin: str) -> dict[str, torch.Tensor]:
    """Our names -> tensors; raises on the first missing, misshapen or unexpected reference key."""
    state = {}
    for bridge_key, shape in bridge_shapes(settings, llm_width).items():
        key = reference_key(bridge_key, prefix)
        if key not in tensors:
            raise XInstructBlipImportError(f"{path}: {key} is missing")
        if tuple(tensors[key].shape) != shape:
            raise XInstructBlipImportError(f"{path}: {key} has shape {tuple(tensors[key].shape)}, but {origin} "
                                           f"expects {shape}")
        state[bridge_key] = tensors[key]
    used = {reference_key(k, prefix) for k in state}
    for key in tensors:
        if _belongs_to(key, prefix) and key not in used and not _is_dropped(key, prefix):
            raise XInstructBlipImportError(f"{path}: unexpected {key} (not part of {origin})")
    return state


def _same_sizes(a: QFormerSettings, b: QFormerSettings) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _SIZE_FIELDS)


def _describe(settings: QFormerSettings) -> str:
    return (f"a Q-Former of {settings.num_layers} layers x {settings.hidden_size} with {settings.num_query_tokens} "
            f"queries over {settings.encoder_width}-wide encoder tokens")


def import_xinstructblip(path: str | Path, modalities: Optional[Iterable[str]] = None,
                         expected: Optional[dict[str, QFormerSettings]] = None,
                         num_heads: int = 12) -> dict[str, ImportedBridge]:
    """Read a reference `.pth` safely and return one `ImportedBridge` per modality (ours: image/video/audio/points).

    `modalities` defaults to every modality the file holds. With `expected` settings for a modality the file must
    match them exactly; otherwise the sizes are read from the file and the file must be consistent with them.
    """
    path = Path(path)
    tensors = unwrap_state_dict(read_reference_checkpoint(path), path, wrappers=("model",))
    present = [m for m, p in REFERENCE_PREFIXES.items() if any(_belongs_to(k, p) for k in tensors)]
    wanted = list(modalities) if modalities is not None else present
    if not wanted:
        raise XInstructBlipImportError(
            f"{path}: no X-InstructBLIP Q-Former in it (expected keys such as audio_Qformer.bert.embeddings."
            f"word_embeddings.weight or pc_query_tokens; the file starts with {sorted(tensors)[:3]})")
    imported = {}
    for modality in wanted:
        if modality not in REFERENCE_PREFIXES:
            raise XInstructBlipImportError(f"unknown modality {modality!r}; expected one of "
                                           f"{sorted(REFERENCE_PREFIXES)}")
        prefix = REFERENCE_PREFIXES[modality]
        if modality not in present:
            raise XInstructBlipImportError(f"{path}: holds no {modality} Q-Former ({prefix}_query_tokens and "
                                           f"{prefix}_Qformer.* are absent; it has {present or 'none'})")
        settings, llm_width = infer_settings(tensors, prefix, path, num_heads)
        origin = f"{_describe(settings)} (sizes read from the file)"
        if expected and modality in expected:
            settings = replace(expected[modality], init_from_text_model=False)
            origin = f"the expected {_describe(settings)}"
        state = _check_and_rename(tensors, prefix, settings, llm_width, path, origin)
        imported[modality] = ImportedBridge(modality=modality, settings=settings, llm_width=llm_width, state=state,
                                            source=path.name)
    claimed = {reference_key(k, REFERENCE_PREFIXES[m]) for m, b in imported.items() for k in b.state}
    ignored = [k for k in tensors if k not in claimed]
    for bridge in imported.values():
        bridge.ignored = ignored
    return imported


def build_bridge(imported: ImportedBridge) -> ModalityBridge:
    """A `ModalityBridge` holding the imported tensors. Its linear baseline has no reference weights: it stays
    untrained and frozen, so it is never written to a checkpoint as if it were trained."""
    bridge = ModalityBridge(imported.settings, imported.llm_width)
    missing, unexpected = bridge.load_state_dict(imported.state, strict=False)
    assert not unexpected and all(k.startswith("linear_baseline.") for k in missing), (missing[:3], unexpected[:3])
    bridge.linear_baseline.requires_grad_(False)
    return bridge


def bridge_config(imported: ImportedBridge) -> dict:
    """The JSON written beside a converted bridge: enough to rebuild it without the reference file."""
    return {"format": "xmodal-bridge", "modality": imported.modality, "settings": imported.settings.to_dict(),
            "llm_width": imported.llm_width, "source": imported.source,
            "reference_prefix": REFERENCE_PREFIXES[imported.modality]}


def load_bridge(path: str | Path, modality: str, expected: Optional[QFormerSettings] = None) -> ModalityBridge:
    """A frozen bridge from a reference `.pth` (imported on the fly) or from our converted `.safetensors`."""
    from core.checkpoints import load_checkpoint

    path = Path(path)
    if path.suffix == ".safetensors":
        config_path = path.with_suffix(".json")
        if not config_path.is_file():
            raise XInstructBlipImportError(f"{path}: {config_path.name} (its settings) is missing beside it")
        config = json.loads(config_path.read_text())
        settings = QFormerSettings(**config["settings"])
        if expected is not None and not _same_sizes(settings, expected):
            raise XInstructBlipImportError(f"{path}: holds {_describe(settings)}, expected {_describe(expected)}")
        bridge = ModalityBridge(settings, config["llm_width"])
        load_checkpoint(bridge, path)
    else:
        imported = import_xinstructblip(path, [modality], {modality: expected} if expected else None)[modality]
        bridge = build_bridge(imported)
    return bridge.eval().requires_grad_(False)
