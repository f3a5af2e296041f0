"""The settings accordion: decoding and bridge choices, the optimiser switch and the preset, as Gradio controls.

Defaults come from `GenerationSettings` so the UI, the API endpoint and the CLI start from the same values. The
controls are listed once (`SettingsControls.inputs`) and read back in that order by `read_settings`.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core.schema import GenerationSettings

DEFAULTS = GenerationSettings()


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
        decoding = gr.Radio(["greedy", "beam", "nucleus"], value=DEFAULTS.decoding, label="Decoding")
        projection = gr.Radio(["qformer", "linear"], value=DEFAULTS.projection, label="Projection",
                              info="Q-Former (X-InstructBLIP) or the linear-projection baseline.")
    with gr.Row():
        max_new_tokens = gr.Slider(1, 512, value=DEFAULTS.max_new_tokens, step=1, label="Max new tokens",
                                   elem_id="max-new-tokens")
        temperature = gr.Slider(0.05, 2.0, value=DEFAULTS.temperature, step=0.05, label="Temperature (nucleus)")
        top_p = gr.Slider(0.05, 1.0, value=DEFAULTS.top_p, step=0.05, label="Top-p (nucleus)")
    with gr.Row():
        repetition_penalty = gr.Slider(1.0, 2.0, value=DEFAULTS.repetition_penalty, step=0.05,
                                       label="Repetition penalty")
        num_beams = gr.Slider(1, 8, value=DEFAULTS.num_beams, step=1, label="Beams (beam search)")
    with gr.Row():
        prefix_cues = gr.Checkbox(DEFAULTS.prefix_cues, label='Modality prefix cues (" image: ", " audio: ", ...)')
        cmaa = gr.Checkbox(DEFAULTS.cmaa, label="CMAA fusion (VisLingInstruct)")
    qformer_prompt = gr.Textbox(label="Q-Former prompt (optional)", lines=1,
                                placeholder="Text the Q-Formers see instead of the question")
    return SettingsControls(preset, optimize, decoding, max_new_tokens, temperature, top_p, repetition_penalty,
                            num_beams, prefix_cues, projection, cmaa, qformer_prompt)


def read_settings(preset: str, optimize: bool, decoding: str, max_new_tokens: float, temperature: float,
                  top_p: float, repetition_penalty: float, num_beams: float, prefix_cues: bool, projection: str,
                  cmaa: bool, qformer_prompt: str | None) -> ChosenSettings:
    """The control values (in `SettingsControls.inputs` order) as checked settings; raises ValueError if invalid."""
    generation = GenerationSettings(
        decoding=decoding, max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p),
        repetition_penalty=float(repetition_penalty), num_beams=int(num_beams), prefix_cues=bool(prefix_cues),
        projection=projection, cmaa=bool(cmaa))
    generation.validate()
    return ChosenSettings(preset=preset, optimize=bool(optimize), generation=generation,
                          qformer_prompt=(qformer_prompt or "").strip() or None)
