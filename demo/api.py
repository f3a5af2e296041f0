"""The `ask` API endpoint (DESIGN section 7): one question with any media in, the answer's JSON out.

Its parameter names are what `gradio_client` callers pass (`client.predict(question=..., image=handle_file(p),
api_name="/ask")`); the settings parameters take the settings controls' defaults when left out.
"""
from __future__ import annotations

from typing import Callable, Optional

import gradio as gr

from core import media
from core.schema import AskRequest
from demo.engine import PipelineHost
from demo.settings import DEFAULTS, read_settings


def make_ask_endpoint(host: PipelineHost, default_preset: str) -> Callable[..., dict]:
    """The endpoint function; its defaults (used by Python callers) match the settings controls' initial values."""

    def ask(question: str, image: Optional[str] = None, audio: Optional[str] = None, video: Optional[str] = None,
            points: Optional[str] = None, preset: str = default_preset, optimize: bool = False,
            decoding: str = DEFAULTS.decoding, max_new_tokens: float = DEFAULTS.max_new_tokens,
            temperature: float = DEFAULTS.temperature, top_p: float = DEFAULTS.top_p,
            repetition_penalty: float = DEFAULTS.repetition_penalty, num_beams: float = DEFAULTS.num_beams,
            prefix_cues: bool = DEFAULTS.prefix_cues, projection: str = DEFAULTS.projection,
            cmaa: bool = DEFAULTS.cmaa, qformer_prompt: Optional[str] = None) -> dict:
        """Answer `question` about the given files; returns AskResult.to_json() (answer, timings, candidates)."""
        try:
            chosen = read_settings(preset, optimize, decoding, max_new_tokens, temperature, top_p,
                                   repetition_penalty, num_beams, prefix_cues, projection, cmaa, qformer_prompt)
            files = {"image": image, "audio": audio, "video": video, "points": points}
            request = AskRequest(question=question or "", settings=chosen.generation, optimize=chosen.optimize,
                                 qformer_prompt=chosen.qformer_prompt,
                                 **{kind: path for kind, path in files.items() if path})
            return host.get(chosen.preset).ask(request).to_json()
        except (media.MediaError, ValueError) as e:
            raise gr.Error(str(e)) from e

    return ask
