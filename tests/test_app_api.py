"""The `ask` API of the running app, called with gradio_client as a user's script would (DESIGN section 7)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from core.media import DEFAULT_LIMITS

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
SHORT = dict(max_new_tokens=6, api_name="/ask")


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server, verbose=False)


def test_ask_with_an_image_returns_the_answer_json(client):
    question = "What animal is in the picture?"
    result = client.predict(question=question, image=handle_file(str(EXAMPLES / "cat.jpg")), **SHORT)
    assert isinstance(result["answer"], str) and result["answer"].strip()
    assert result["instruction_used"] == question
    assert 1 <= result["tokens_generated"] <= 6
    assert result["timings_s"]["total"] > 0
    assert "encode_image" in result["timings_s"]
    assert "candidates" not in result


def test_a_corrupt_file_gives_the_loaders_message(client, tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(AppError, match=r"broken\.png: .*(not a readable PNG|truncated or damaged)"):
        client.predict(question="What is this?", image=handle_file(str(corrupt)), **SHORT)
    # The app keeps serving after the refusal.
    assert client.predict(question="Say hello.", **SHORT)["answer"].strip()


def test_audio_over_the_limit_is_refused_with_the_limit_named(client, tmp_path):
    seconds = DEFAULT_LIMITS.max_audio_seconds + 2
    rate = 8000
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32)
    long_clip = tmp_path / "long.wav"
    soundfile.write(long_clip, noise, rate)
    with pytest.raises(AppError, match=r"long\.wav: .*over the 30 s limit.*max_audio_seconds"):
        client.predict(question="What do you hear?", audio=handle_file(str(long_clip)), **SHORT)


@pytest.mark.parametrize("setting, expected", [
    (dict(max_new_tokens=5000), r"^max_new_tokens must be between 1 and 512, not 5000$"),
    (dict(temperature=0), r"^temperature must be between 0.05 and 2.0, not 0$"),
    (dict(num_beams=2.5), r"^num_beams must be a whole number, not 2.5$"),
    (dict(top_p="high"), r"^top_p must be a number, not 'high'$"),
    (dict(optimize="false"), r"^optimize must be true or false, not 'false'$"),
    (dict(decoding="sampling"), r"^decoding must be greedy, beam or nucleus, not 'sampling'$"),
    (dict(preset="huge"), r"^preset must be one of tiny \(those this server offers\), not 'huge'$"),
])
def test_a_bad_setting_is_refused_with_its_parameter_named(client, setting, expected):
    with pytest.raises(AppError, match=expected):
        client.predict(question="Say hello.", **{**SHORT, **setting})


def test_two_concurrent_sessions_each_get_their_own_answer(app_server):
    asks = [
        dict(question="How many beeps do you hear?", audio=handle_file(str(EXAMPLES / "beeps.wav"))),
        dict(question="What shape is this point cloud?", points=handle_file(str(EXAMPLES / "torus_points.ply"))),
    ]

    def ask(kwargs):
        return Client(app_server, verbose=False).predict(**kwargs, **SHORT)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(ask, asks))
    for kwargs, result in zip(asks, results):
        assert result["instruction_used"] == kwargs["question"]
        assert result["answer"].strip()
    assert "encode_audio" in results[0]["timings_s"] and "encode_points" not in results[0]["timings_s"]
    assert "encode_points" in results[1]["timings_s"] and "encode_audio" not in results[1]["timings_s"]
