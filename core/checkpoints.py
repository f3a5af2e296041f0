"""Checkpoint format: safetensors holding only trained parameters, with a JSON config beside it. Never pickle.

Frozen parts (encoders, LLM, the Q-Former's frozen text embeddings) come from their sources, so a checkpoint is
small; loading checks that every stored tensor matches a parameter of the module by name and shape.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.atomic import atomic_output


class CheckpointError(RuntimeError):
    """A checkpoint does not fit the module it is loaded into."""


def trained_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training updates (requires_grad), detached, contiguous."""
    return {name: p.detach().contiguous() for name, p in module.named_parameters() if p.requires_grad}


def save_checkpoint(module: nn.Module, path: Path, config: dict, dtype: torch.dtype = torch.float16) -> None:
    """Write `path` (.safetensors) and `path` with .json holding `config`."""
    path = Path(path)
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in trained_state(module).items()}
    with atomic_output(path) as partial:
        save_file(tensors, str(partial), metadata={"format": "pt"})
    with atomic_output(path.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_checkpoint(module: nn.Module, path: Path, required: tuple[str, ...] = ()) -> dict:
    """Load trained tensors into `module`; return the JSON config. Raises CheckpointError naming the first misfit
    (FileNotFoundError when there is no file, so callers that handle missing files handle this one too).

    `required`: name prefixes ("" for all) whose trainable parameters the file must hold, so a truncated or older
    file is refused instead of leaving part of the module at its random initialisation. Files that hold only some
    parts on purpose (warm starts, one projection of a bridge) are loaded without it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    stored = load_file(str(path))
    parameters = dict(module.named_parameters())
    for name, tensor in stored.items():
        if name not in parameters:
            raise CheckpointError(f"{path.name}: stored tensor {name!r} has no matching parameter")
        if tuple(parameters[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path.name}: {name!r} has shape {tuple(tensor.shape)}, "
                                  f"the model expects {tuple(parameters[name].shape)}")
    missing = [name for name, p in parameters.items()
               if p.requires_grad and name.startswith(required) and name not in stored] if required else []
    if missing:
        raise CheckpointError(f"{path.name}: trained parameter {missing[0]!r} is missing "
                              f"({len(missing)} missing in all); the file is incomplete or from another version")
    with torch.no_grad():
        for name, tensor in stored.items():
            parameters[name].copy_(tensor.to(parameters[name].dtype))
    config_path = path.with_suffix(".json")
    return json.loads(config_path.read_text()) if config_path.is_file() else {}
