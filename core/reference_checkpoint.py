"""Reading the reference projects' PyTorch checkpoints (X-InstructBLIP, BEATs, ULIP-2) without unrestricted pickle.

These files are pickles; `torch.load(weights_only=True)` accepts only tensors and plain containers, so a file
that smuggles code cannot run it. Some of them also carry harmless bookkeeping objects (ULIP saves its
`argparse.Namespace`); callers name exactly those classes, and nothing else is allowed.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Iterable, Mapping

import torch


class ReferenceCheckpointError(ValueError):
    """A reference checkpoint cannot be read safely, or does not hold what it should."""


def read_reference_checkpoint(path: str | Path, allowed_classes: Iterable[type] = ()) -> Mapping:
    """The file's top-level dictionary, read on the CPU with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(list(allowed_classes)):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        named = re.search(r"GLOBAL ([\w.]+)", str(error))
        if named is None:  # not torch's weights-only refusal: the bytes are no pickle at all
            raise ReferenceCheckpointError(f"{path}: not a readable PyTorch checkpoint ({error})") from error
        raise ReferenceCheckpointError(
            f"{path}: refused, it holds Python objects other than tensors and plain containers "
            f"({named.group(1)}), and loading those could run code from the file. "
            "Re-save only its state dict from a trusted copy, or convert it where you trust it."
        ) from error
    except Exception as error:  # garbage bytes fail anywhere in the unpickler (IndexError, KeyError, ...)
        raise ReferenceCheckpointError(f"{path}: not a readable PyTorch checkpoint ({error!r})") from error
    if not isinstance(data, Mapping):
        raise ReferenceCheckpointError(f"{path}: expected a dictionary of tensors, found {type(data).__name__}")
    return data


def unwrap_state_dict(data: Mapping, path: str | Path, wrappers: tuple[str, ...] = ("model", "state_dict")) -> dict:
    """The tensors of a checkpoint that may wrap them under 'model' or 'state_dict' (training frameworks do)."""
    for key in wrappers:
        if key in data and isinstance(data[key], Mapping):
            data = data[key]
            break
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ReferenceCheckpointError(f"{path}: holds no tensors (top-level keys: {sorted(data)[:5]})")
    return tensors


def match_state_dict(path: str | Path, what: str, expected: Mapping[str, torch.Tensor],
                     named_tensors: Iterable[tuple[str, str, torch.Tensor]],
                     optional: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Check reference tensors against a module's state dict and return them under our names.

    `named_tensors` yields (name as shown to the user, our parameter name, tensor). The first unexpected name,
    misshapen tensor or missing parameter (other than names ending in `optional`) is refused with a message naming
    it, so a wrong file never half-loads.
    """
    state: dict[str, torch.Tensor] = {}
    for shown, name, tensor in named_tensors:
        if name not in expected:
            raise ReferenceCheckpointError(f"{path}: unexpected {what} weight {shown!r}")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ReferenceCheckpointError(f"{path}: {shown!r} has shape {tuple(tensor.shape)}, "
                                           f"this {what} config expects {tuple(expected[name].shape)}")
        state[name] = tensor
    missing = [name for name in expected if name not in state and not (optional and name.endswith(optional))]
    if missing:
        raise ReferenceCheckpointError(f"{path}: {what} weight {missing[0]!r} is missing "
                                       f"({len(missing)} missing in all)")
    return state
