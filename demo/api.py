"""The `ask` API endpoint (DESIGN section 7): one question with any media in, the answer's JSON out.

Its parameter names are what `gradio_client` callers pass (`client.predict(question=..., image=handle_file(p),
api_name="/ask")`); the settings parameters take the settings controls' defaults when left out. The endpoint has
its own hidden inputs, which pass values through unchecked, so that every refusal comes from `read_settings` and
names the parameter (a slider's own check would say only "Value 5000 is greater than maximum value 512.").
"""
from __future__ import annotations

from typing import Callable, Optional, get_args

import gradio as gr

from core import media
from core.schema import AskRequest, Decoding, Projection
from demo.engine import PipelineHost
from demo.settings import DEFAULTS, NUMBER_RANGES, WHOLE_NUMBERS, read_settings


def build_api_inputs(presets: list[str], default_preset: str) -> list[gr.components.Component]:
    """Hidden inputs in the endpoint's parameter order: the question, one plain file per modality, the settings."""
    with gr.Column(visible=False):
        files = [gr.File(label=kind, type="filepath") for kind in ("image", "audio", "video", "points")]
        numbers = [gr.Number(getattr(DEFAULTS, name), label=name,
                             info=f"{NUMBER_RANGES[name][0]} to {NUMBER_RANGES[name][1]}"
                                  f"{', whole' if name in WHOLE_NUMBERS else ''}")
                   for name in NUMBER_RANGES]  # in the endpoint's parameter order
        return [gr.Textbox(label="question"), *files,
                _choice("preset", presets, default_preset), gr.Checkbox(False, label="optimize"),
                _choice("decoding", list(get_args(Decoding)), DEFAULTS.decoding), *numbers,
                gr.Checkbox(DEFAULTS.prefix_cues, label="prefix_cues"),
                _choice("projection", list(get_args(Projection)), DEFAULTS.projection),
                gr.Checkbox(DEFAULTS.cmaa, label="cmaa"), gr.Textbox(label="qformer_prompt")]


def _choice(name: str, choices: list[str], value: str) -> gr.Dropdown:
    """A choice whose list reaches `view_api` but whose check is the endpoint's own (custom values pass)."""
    return gr.Dropdown(choices, value=value, label=name, allow_custom_value=True)


def make_ask_endpoint(host: PipelineHost, presets: list[str], default_preset: str) -> Callable[..., dict]:
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
            if preset not in presets:
                raise ValueError(f"preset must be one of {', '.join(presets)} (those this server offers), "
                                 f"not {preset!r}")
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
