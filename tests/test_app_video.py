"""The video tab: every format the loader takes as a video can be uploaded, and the player gets a copy it can play."""
from __future__ import annotations

import warnings
from pathlib import Path

import gradio as gr
import imageio_ffmpeg
import pytest

from core.media import CorruptFileError, file_digest
from demo import handlers, video_player
from demo.converted import CONVERTED_DIR
from demo.layout import build_demo
from media_fixtures import make_video


def _codec(path: str) -> str:
    frames = imageio_ffmpeg.read_frames(path)
    meta = next(frames)
    frames.close()
    return meta["codec"]


def test_the_upload_takes_every_video_format_the_loader_accepts_including_gif():
    with build_demo(host=None, presets=["tiny"], default_preset="tiny") as demo:
        pass
    upload = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "video-upload")
    assert isinstance(upload, gr.File)
    assert {".mp4", ".webm", ".avi", ".mov", ".gif"} <= set(upload.file_types)


@pytest.mark.parametrize("name", ["clip.gif", "clip.avi", "clip.mov"])
def test_videos_a_browser_cannot_play_reach_the_player_as_h264_mp4(tmp_path, name):
    clip = make_video(tmp_path / name, seconds=1.0, size=(33, 25))  # odd sizes: H.264 needs even ones
    shown, upload = handlers.preview_video(str(clip))
    assert shown.endswith("clip.mp4") and _codec(shown) == "h264"
    assert upload is not None and not isinstance(upload, str), "the upload itself must stay as it is"


def test_a_video_the_browser_plays_is_shown_as_it_is(tmp_path):
    clip = make_video(tmp_path / "clip.mp4")
    assert handlers.preview_video(str(clip))[0] == str(clip)


def test_a_corrupt_video_is_refused_with_the_loaders_message_and_cleared(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.warns(UserWarning, match="broken.avi: "):
        assert handlers.preview_video(str(broken)) == (None, None)


def test_a_failed_conversion_keeps_the_upload_and_leaves_no_partial_copy(tmp_path, monkeypatch):
    clip = make_video(tmp_path / "clip.avi", seconds=0.5)

    def fail(source, target):
        Path(target).write_bytes(b"half")
        raise CorruptFileError(Path(source), "cannot be decoded (test)")

    monkeypatch.setattr(video_player, "_to_browser_mp4", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shown, upload = handlers.preview_video(str(clip))
    assert shown is None and upload is not None, "the model can still read the file"
    assert any("The player cannot show this video" in str(w.message) for w in caught)
    assert not list((CONVERTED_DIR / file_digest(str(clip))).glob("*"))


def test_an_mp4_of_a_codec_browsers_do_not_play_reaches_the_player_as_h264(tmp_path):
    """OpenCV's usual mp4 holds MPEG-4 Part 2, which no browser plays although the file ends in .mp4."""
    from media_fixtures import ffmpeg

    clip = tmp_path / "opencv.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32:r=10:d=0.5", "-c:v", "mpeg4", str(clip))
    shown, _ = handlers.preview_video(str(clip))
    assert shown != str(clip) and shown.endswith("opencv.mp4") and _codec(shown) == "h264"
