"""Shared fixtures: one loaded tiny pipeline per test session, the offline environment, the gpu marker."""
from __future__ import annotations

import os

import pytest

for _name, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                      "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(_name, _value)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_pipeline():
    """The real offline preset (SmolLM2 + frozen encoders), loaded once: about 5 s."""
    from core.pipeline import Pipeline

    return Pipeline.from_preset("tiny")
