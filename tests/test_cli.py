"""`python -m core ask` as a user runs it: streamed text, --json, and one-line errors without tracebacks."""
import json
import os
import subprocess
import sys

import pytest

from core.schema import AskResult, InstructionCandidate, OptimizerTrace
from tests.media_fixtures import make_audio, make_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "core", "ask", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_json_output_has_the_contract_fields(tmp_path):
    image = make_image(tmp_path / "x.png")
    audio = make_audio(tmp_path / "x.wav", seconds=1.0)
    proc = _run("--image", str(image), "--audio", str(audio), "--max-new-tokens", "6", "--json", "What is this?")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["answer"].strip() and out["instruction_used"] == "What is this?"
    assert out["tokens_generated"] > 0
    for key in ("load", "decode", "encode_image", "encode_audio", "qformer", "first_token", "total", "tokens_per_s"):
        assert key in out["timings_s"]


def test_the_docs_name_every_json_field():
    """README's --json paragraph and docs/APP.md's API section list what `AskResult.to_json()` holds."""
    candidate = InstructionCandidate("What is it?", 1.0, [1.0], ["What"], "original")
    trace = OptimizerTrace([candidate], "", "What is it?", {"total": 1.0})
    out = AskResult("a", "What is it?", {"total": 1.0}, 1, optimizer=trace).to_json()
    for doc, names in (("README.md", [*out, *out["candidates"][0]]), ("docs/APP.md", out)):
        text = " ".join(open(os.path.join(ROOT, doc), encoding="utf-8").read().split())
        assert not [name for name in names if f"`{name}`" not in text], doc


def test_plain_output_is_the_streamed_answer():
    proc = _run("--max-new-tokens", "10", "What is the capital of France?")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


@pytest.mark.parametrize("content,flag,expected", [
    (b"", "--image", "empty"),
    (b"\x89PNG\r\n\x1a\n garbage", "--image", "x.png"),
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, content, flag, expected):
    bad = tmp_path / "x.png"
    bad.write_bytes(content)
    proc = _run(flag, str(bad), "What is it?")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0].lower()


def test_bad_media_and_an_empty_question_are_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """The pixel count is read from the file's header, so the CLI needs no model to refuse it."""
    from PIL import Image

    from core import cli, presets

    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 5001)).save(huge)  # 40,008,000 pixels, a few KB on disk
    chosen = presets.get_preset

    def unbuildable(name, **overrides):
        preset = chosen(name, **overrides)
        preset.build = lambda _: pytest.fail("the model loaded before the media were checked")
        return preset

    monkeypatch.setattr(presets, "get_preset", unbuildable)
    assert cli.main(["ask", "--image", str(huge), "What is it?"]) == 2
    assert "huge.png: the image is 8000x5001 = 40.01 megapixels" in capsys.readouterr().err
    assert cli.main(["ask", "   "]) == 2
    assert "error: the question is empty" in capsys.readouterr().err
    assert cli.main(["ask", "--qformer-prompt", "x" * 4001, "What is it?"]) == 2
    assert "error: the Q-Former prompt is 4,001 characters; the limit is 4,000" in capsys.readouterr().err
    assert cli.main(["ask", "--max-new-tokens", "5000", "What is it?"]) == 2
    assert "error: max_new_tokens must be between 1 and 1024, not 5000" in capsys.readouterr().err
    assert cli.main(["ask", "--temperature", "nan", "What is it?"]) == 2
    assert "error: temperature must be in (0, 5], not nan" in capsys.readouterr().err


def test_wrong_kind_for_the_flag_missing_file_and_folder(tmp_path):
    audio = make_audio(tmp_path / "x.wav")
    proc = _run("--image", str(audio), "What is it?")
    assert proc.returncode == 2 and "a .wav file is audio, not an image" in proc.stderr
    proc = _run("--points", str(tmp_path / "nothing.ply"), "What is it?")
    assert proc.returncode == 2 and "nothing.ply: file not found" in proc.stderr
    (tmp_path / "folder.png").mkdir()
    proc = _run("--image", str(tmp_path / "folder.png"), "What is it?")
    assert proc.returncode == 2 and "is a folder, not a file" in proc.stderr


def test_cmaa_with_the_linear_projection_is_refused():
    proc = _run("--projection", "linear", "--cmaa", "What is it?")
    assert proc.returncode == 2 and "cannot be combined with the linear projection" in proc.stderr


def test_a_closed_output_pipe_ends_quietly():
    """`python -m core ask ... | head -c 5`: the reader leaving is no error worth a traceback."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "core", "ask", "--max-new-tokens", "40", "Tell me about Paris."],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=300)
    assert "Traceback" not in stderr.decode() and proc.returncode == 141
