"""docs/APP.md states the `ask` API's number ranges as the Settings controls (which the API shares) enforce them."""
from pathlib import Path

import gradio as gr

from demo.settings import build_settings

APP_DOC = Path(__file__).resolve().parents[1] / "docs" / "APP.md"


def test_the_api_ranges_in_the_docs_are_the_sliders():
    with gr.Blocks():
        controls = build_settings(["tiny"], "tiny")
    text = " ".join(APP_DOC.read_text(encoding="utf-8").split())
    for name in ("max_new_tokens", "temperature", "top_p", "repetition_penalty", "num_beams"):
        slider = getattr(controls, name)
        assert f"`{name}` {slider.minimum:g}-{slider.maximum:g}" in text, name
