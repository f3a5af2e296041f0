"""The video player's copy of an upload: browsers play mp4 and webm holding H.264, VP8, VP9 or AV1, but not .avi,
.mov, an animated .gif (which the loader accepts as a video) or an mp4 of another codec (OpenCV's usual MPEG-4
Part 2, HEVC), so those are converted to H.264 mp4 with the ffmpeg `core.media_ffmpeg` runs.

Only the player gets the copy; the model always reads the uploaded file itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from core import media_ffmpeg
from demo.converted import converted_copy

BROWSER_VIDEO_SUFFIXES = (".mp4", ".webm")
BROWSER_VIDEO_CODECS = ("h264", "vp8", "vp9", "av1")
PLAYER_MAX_WIDTH = 640
"""The player is 300 px high, so a larger copy would only make the conversion slower."""


def playable_video(path: str, codec: Optional[str]) -> str:
    """`path` when a browser plays it (`codec` as `core.media.load_video` found it), else its mp4 copy (raises
    `core.media.MediaError` if ffmpeg fails)."""
    if Path(path).suffix.lower() in BROWSER_VIDEO_SUFFIXES and codec in BROWSER_VIDEO_CODECS:
        return path
    return converted_copy(path, ".mp4", _to_browser_mp4)


def _to_browser_mp4(source: str, target: str) -> None:
    # H.264 in yuv420p needs even dimensions; the first audio track, if any, comes along as AAC
    scale = f"scale=w='2*trunc(min({PLAYER_MAX_WIDTH},iw)/2)':h=-2"
    media_ffmpeg.run_ffmpeg(Path(source), ["-i", source, "-map", "0:v:0", "-map", "0:a:0?", "-vf", scale,
                                           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                                           "-c:a", "aac", "-movflags", "+faststart", target])
