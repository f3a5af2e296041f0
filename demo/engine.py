"""The process-wide pipelines: each preset is loaded once, on first use, and shared by every session.

Loading takes seconds and the models are large, so sessions never get their own copy; their chats stay separate
because everything per-user lives in the request and in the session state. The pipeline serialises the Q-Former
and LLM work.
"""
from __future__ import annotations

import threading

from core.pipeline import Pipeline


class PipelineHost:
    def __init__(self) -> None:
        self._pipelines: dict[str, Pipeline] = {}
        self._loading = threading.Lock()

    def get(self, preset: str) -> Pipeline:
        """The loaded pipeline of `preset`, loading it now if this is its first use (raises ValueError if unknown)."""
        with self._loading:
            if preset not in self._pipelines:
                self._pipelines[preset] = Pipeline.from_preset(preset)
            return self._pipelines[preset]
