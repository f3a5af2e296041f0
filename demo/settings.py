"""The settings accordion: decoding and bridge choices, the optimiser switch and the preset, as Gradio controls.

Defaults come from `GenerationSettings` so the UI, the API endpoint and the CLI start from the same values. The
controls are listed once (`SettingsControls.inputs`) and read back in that order by `read_settings`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import gradio as gr

from core.schema import Decoding, GenerationSettings, Projection

DEFAULTS = GenerationSettings()
NUMBER_RANGES = {"max_new_tokens": (1, 512, 1), "temperature": (0.05, 2.0, 0.05), "top_p": (0.05, 1.0, 0.05),
                 "repetition_penalty": (1.0, 2.0, 0.05), "num_beams": (1, 8, 1)}
"""(minimum, maximum, step) of each number setting, in the controls' order: the sliders' ranges, which the API
endpoint keeps too."""
WHOLE_NUMBERS = ("max_new_tokens", "num_beams")


@dataclass
class SettingsControls:
    preset: gr.Dropdown
    optimize: gr.Checkbox
    decoding: gr.Radio
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    repetition_penalty: gr.Slider
    num_beams: gr.Slider
    prefix_cues: gr.Checkbox
    projection: gr.Radio
    cmaa: gr.Checkbox
    qformer_prompt: gr.Textbox

    def inputs(self) -> list[gr.components.Component]:
        return [self.preset, self.optimize, self.decoding, self.max_new_tokens, self.temperature, self.top_p,
                self.repetition_penalty, self.num_beams, self.prefix_cues, self.projection, self.cmaa,
                self.qformer_prompt]


@dataclass
class ChosenSettings:
    """What one turn runs with, read from the controls."""

    preset: str
    optimize: bool
    generation: GenerationSettings
    qformer_prompt: str | None


def build_settings(presets: list[str], default_preset: str) -> SettingsControls:
    """The controls, laid out in the current Blocks context (inside an accordion the caller opens)."""
    with gr.Row():
        preset = gr.Dropdown(presets, value=default_preset, label="Preset",
                             info="Only presets whose model sources resolve on this machine are offered.")
        optimize = gr.Checkbox(False, label="Optimise the instruction (VisLingInstruct)", elem_id="optimize",
                               info="Rewrite the question, score candidates by IAS, compose the best one.")
    with gr.Row():
        decoding = gr.Radio(list(get_args(Decoding)), value=DEFAULTS.decoding, label="Decoding")
        projection = gr.Radio(list(get_args(Projection)), value=DEFAULTS.projection, label="Projection",
                              info="Q-Former (X-InstructBLIP) or the linear-projection baseline.")
    with gr.Row():
        max_new_tokens = _slider("max_new_tokens", "Max new tokens", elem_id="max-new-tokens")
        temperature = _slider("temperature", "Temperature (nucleus)")
        top_p = _slider("top_p", "Top-p (nucleus)")
    with gr.Row():
        repetition_penalty = _slider("repetition_penalty", "Repetition penalty")
        num_beams = _slider("num_beams", "Beams (beam search)")
    with gr.Row():
        prefix_cues = gr.Checkbox(DEFAULTS.prefix_cues, label='Modality prefix cues (" image: ", " audio: ", ...)')
        cmaa = gr.Checkbox(DEFAULTS.cmaa, label="CMAA fusion (VisLingInstruct)")
    qformer_prompt = gr.Textbox(label="Q-Former prompt (optional)", lines=1,
                                placeholder="Text the Q-Formers see instead of the question")
    return SettingsControls(preset, optimize, decoding, max_new_tokens, temperature, top_p, repetition_penalty,
                            num_beams, prefix_cues, projection, cmaa, qformer_prompt)


def _slider(name: str, label: str, **kwargs) -> gr.Slider:
    minimum, maximum, step = NUMBER_RANGES[name]
    return gr.Slider(minimum, maximum, value=getattr(DEFAULTS, name), step=step, label=label, **kwargs)


def read_settings(preset: str, optimize: bool, decoding: str, max_new_tokens: float, temperature: float,
                  top_p: float, repetition_penalty: float, num_beams: float, prefix_cues: bool, projection: str,
                  cmaa: bool, qformer_prompt: str | None) -> ChosenSettings:
    """The control values (in `SettingsControls.inputs` order) as checked settings; raises ValueError if invalid.

    Numbers and flags are checked here, not by the controls, so an API caller's refusal names the parameter.
    """
    numbers = {name: _checked_number(name, value) for name, value in (
        ("max_new_tokens", max_new_tokens), ("temperature", temperature), ("top_p", top_p),
        ("repetition_penalty", repetition_penalty), ("num_beams", num_beams))}
    generation = GenerationSettings(decoding=decoding, prefix_cues=_checked_flag("prefix_cues", prefix_cues),
                                    projection=projection, cmaa=_checked_flag("cmaa", cmaa), **numbers)
    generation.validate()
    return ChosenSettings(preset=preset, optimize=_checked_flag("optimize", optimize), generation=generation,
                          qformer_prompt=(qformer_prompt or "").strip() or None)


def _checked_number(name: str, value: object) -> int | float:
    """`value` as the setting's type, or a ValueError that names the setting and its range."""
    minimum, maximum, _ = NUMBER_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, not {value}")
    if name in WHOLE_NUMBERS:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, not {value}")
        return int(value)
    return float(value)


def _checked_flag(name: str, value: object) -> bool:
    """A switch must be a real boolean: the API would otherwise take the string "false" as true."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value
