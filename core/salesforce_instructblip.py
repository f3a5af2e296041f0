"""The parts of a `transformers` InstructBLIP checkpoint (e.g. Salesforce/instructblip-vicuna-7b) the GPU preset uses.

Those are the EVA-CLIP vision tower, the trained Q-Former, its query tokens, the language projection and the
vision tower's final LayerNorm (our bridge's `encoder_norm`). The repository also holds its own copy of the LLM
(most of its ~30 GB); only the safetensors shards that contain the parts above are fetched and read, and the LLM
comes from wherever the preset names it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from core.qformer import QFormerSettings
from core.xinstructblip_import import REFERENCE_MAX_INSTRUCTION_TOKENS, ImportedBridge, bridge_shapes

PART_PREFIXES = ("vision_model.", "qformer.", "query_tokens", "language_projection.")
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class InstructBlipSourceError(ValueError):
    """An InstructBLIP source is missing, unreachable or lacks a part the preset needs."""


@dataclass
class InstructBlipParts:
    vision_model: torch.nn.Module
    """`InstructBlipVisionModel`, frozen."""
    bridge: ImportedBridge
    """The image bridge: Q-Former, query tokens, projection and LayerNorm under our names."""


def unreachable(source: str, error: Exception) -> str:
    """What to say when a hub id or folder cannot be read (offline without a cache is the usual cause)."""
    return (f"cannot read {source!r} ({str(error).splitlines()[0]}); give a local folder, or fill the Hugging Face "
            "cache first (the app and tests set HF_HUB_OFFLINE=1 unless told otherwise)")


def _fetch(source: str, filename: str) -> Path | None:
    """A file of a local folder or hub repository; None when the repository has no such file."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename))
    except RemoteEntryNotFoundError:  # the repository answered: no such file (not "offline and not cached")
        return None
    except Exception as error:  # noqa: BLE001 - offline, unknown repository, no access: one clear message
        raise InstructBlipSourceError(unreachable(f"{source}/{filename}", error)) from error


def part_files(source: str) -> list[Path]:
    """Only the weight files holding vision tower / Q-Former / projection tensors (not the LLM-only shards)."""
    index_path = _fetch(source, INDEX_FILE)
    if index_path is None:
        single = _fetch(source, SINGLE_FILE)
        if single is None:
            raise InstructBlipSourceError(f"{source!r} has neither {INDEX_FILE} nor {SINGLE_FILE}")
        return [single]
    weight_map = json.loads(index_path.read_text())["weight_map"]
    shards = sorted({shard for key, shard in weight_map.items() if key.startswith(PART_PREFIXES)})
    if not shards:
        raise InstructBlipSourceError(f"{source!r}: its index names no vision_model / qformer tensors")
    return [_fetch(source, shard) for shard in shards]


def _read_parts(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    tensors = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(PART_PREFIXES) and not key.endswith("position_ids"):
                    tensors[key] = handle.get_tensor(key)
    return tensors


def _bridge_name(key: str) -> str | None:
    if key.startswith("qformer."):
        return "qformer." + key
    if key == "query_tokens":
        return "qformer.query_tokens"
    if key.startswith("language_projection."):
        return "projection." + key.removeprefix("language_projection.")
    if key.startswith("vision_model.post_layernorm."):
        return "qformer.encoder_norm." + key.removeprefix("vision_model.post_layernorm.")
    return None


def read_instructblip_parts(source: str) -> InstructBlipParts:
    """Read the parts from a hub id (cached by huggingface_hub) or a `save_pretrained` folder."""
    from transformers import InstructBlipConfig, InstructBlipVisionModel

    try:
        config = InstructBlipConfig.from_pretrained(source)
    except OSError as error:
        raise InstructBlipSourceError(unreachable(source, error)) from error
    q = config.qformer_config
    if q.max_position_embeddings != 512:
        raise InstructBlipSourceError(f"{source!r}: a Q-Former with {q.max_position_embeddings} positions; "
                                      "ours has BERT's 512")
    tensors = _read_parts(part_files(source))
    if "language_projection.weight" not in tensors:
        raise InstructBlipSourceError(f"{source!r}: language_projection.weight is missing")
    settings = QFormerSettings(
        encoder_width=q.encoder_hidden_size, num_query_tokens=config.num_query_tokens, hidden_size=q.hidden_size,
        num_layers=q.num_hidden_layers, num_heads=q.num_attention_heads, intermediate_size=q.intermediate_size,
        cross_attention_frequency=q.cross_attention_frequency, vocab_size=q.vocab_size,
        max_instruction_tokens=REFERENCE_MAX_INSTRUCTION_TOKENS, init_from_text_model=False,
    )
    llm_width = tensors["language_projection.weight"].shape[0]
    renamed = {k: _bridge_name(k) for k in tensors}
    state = {name: tensors[k] for k, name in renamed.items() if name}
    for name, shape in bridge_shapes(settings, llm_width).items():
        if name not in state:
            raise InstructBlipSourceError(f"{source!r}: the tensor for our {name} is missing")
        if tuple(state[name].shape) != shape:
            raise InstructBlipSourceError(f"{source!r}: the tensor for our {name} has shape "
                                          f"{tuple(state[name].shape)}, its config implies {shape}")
    config.vision_config._attn_implementation = "sdpa"  # frozen tower: its attention maps are never drawn
    with torch.device("meta"):
        vision = InstructBlipVisionModel(config.vision_config)
    vision_state = {k.removeprefix("vision_model."): v for k, v in tensors.items() if k.startswith("vision_model.")}
    missing, unexpected = vision.load_state_dict(vision_state, strict=False, assign=True)
    if missing or unexpected:
        raise InstructBlipSourceError(f"{source!r}: vision tower does not fit its config "
                                      f"(missing {missing[:2]}, unexpected {unexpected[:2]})")
    bridge = ImportedBridge(modality="image", settings=settings, llm_width=llm_width, state=state, source=str(source))
    return InstructBlipParts(vision_model=vision.eval().requires_grad_(False), bridge=bridge)
