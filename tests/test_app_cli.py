"""`python app.py`'s command line: --help answers without starting anything; options default to the env vars."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parents[1]


def test_help_prints_the_usage_and_exits_without_serving():
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python app.py")
    for option in ("--preset", "--host", "--port"):
        assert option in done.stdout


def test_options_default_to_the_environment_and_override_it(monkeypatch):
    monkeypatch.setenv("XMODAL_PRESET", "instructblip-7b")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    defaults = app.parse_args([])
    assert (defaults.preset, defaults.host, defaults.port) == ("instructblip-7b", "0.0.0.0", 8000)
    chosen = app.parse_args(["--preset", "tiny", "--host", "127.0.0.1", "--port", "9000"])
    assert (chosen.preset, chosen.host, chosen.port) == ("tiny", "127.0.0.1", 9000)


def test_only_the_offline_preset_forces_offline_mode(monkeypatch):
    environment = {}
    monkeypatch.setattr(os, "environ", environment)  # what configure_environment sets stays in this test
    app.configure_environment("instructblip-7b")
    assert "HF_HUB_OFFLINE" not in environment and "TRANSFORMERS_OFFLINE" not in environment
    app.configure_environment("tiny")
    assert environment["HF_HUB_OFFLINE"] == "1" and environment["TRANSFORMERS_OFFLINE"] == "1"


def test_a_taken_port_is_refused_at_once_with_the_option_to_change_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"Cannot serve on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def test_a_port_left_in_time_wait_by_a_stopped_app_is_not_refused():
    """The server binds with SO_REUSEADDR, so a restart right after a stop serves; the check must not refuse it."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its port goes into TIME_WAIT
    app.ensure_port_free("127.0.0.1", port)


def test_an_ipv6_host_in_brackets_is_checked_like_gradio_serves_it():
    try:
        with socket.socket(socket.AF_INET6) as loopback:
            loopback.bind(("::1", 0))
            port = loopback.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    app.ensure_port_free("[::1]", port)


def test_a_port_out_of_range_is_a_usage_error_from_the_option_or_the_environment(monkeypatch, capsys):
    for argv in (["--port", "70000"], ["--port", "http"]):
        with pytest.raises(SystemExit) as stopped:
            app.parse_args(argv)
        assert stopped.value.code == 2
    assert "argument --port: 'http' is not a port number" in capsys.readouterr().err
    monkeypatch.setenv("GRADIO_SERVER_PORT", "0")
    with pytest.raises(SystemExit):
        app.parse_args([])
    assert "0 is not a port number from 1 to 65535" in capsys.readouterr().err
