"""The ffmpeg binary that imageio-ffmpeg ships, used for what soundfile and PIL cannot read: video frames, audio
tracks inside videos, and mp3.

Each call is one short subprocess with `-v error`, so ffmpeg's failures come back as text we turn into a
`MediaError` and nothing is printed to the user's terminal.
"""
from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from core.media_checks import CorruptFileError, MediaError

TIMEOUT_S = 120.0
"""A decode that takes longer than this is treated as a broken file rather than left to hang the app."""

STILL_IMAGE_DEMUXERS = ("image2", "_pipe")
"""ffmpeg reads single images too (png_pipe, jpeg_pipe, ...); a video loader must not accept those."""

TRUNCATION_SIGNS = ("File ended prematurely", "partial file", "truncat", "moov atom not found")
"""ffmpeg's words for a file that stops early; it still decodes what is there, so we look for them."""


@dataclass(frozen=True)
class Probe:
    """What ffmpeg reports about a file before decoding it."""

    container: str
    duration_s: Optional[float]
    video_stream: Optional[int]
    video_size: Optional[tuple[int, int]]
    fps: Optional[float]
    audio_stream: Optional[int]
    video_codec: Optional[str] = None
    """ffmpeg's name of the video stream's codec ("h264", "mpeg4", "hevc", ...)."""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: Path, what: str) -> Probe:
    """Container, duration, first real video stream (cover art skipped) with its codec, and first audio stream;
    `what` names the expected content ("MP4 video") in the error when ffmpeg cannot open the file at all."""
    stderr = run_ffmpeg(path, ["-i", str(path)], loglevel="info", check=False)[1]
    container = re.search(r"^Input #0, (.+?), from ", stderr, re.M)
    if container is None:
        raise CorruptFileError(path, f"is not a readable {what} ({_reason(stderr)})")
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", stderr)
    video = audio = None
    size = fps = codec = None
    for line in stderr.splitlines():
        stream = re.match(r"\s*Stream #0:(\d+)\S*: (Video|Audio): (.*)", line)
        if stream is None:
            continue
        index, kind, details = int(stream.group(1)), stream.group(2), stream.group(3)
        if kind == "Audio" and audio is None:
            audio = index
        elif kind == "Video" and video is None and "(attached pic)" not in details:
            video = index
            codec = details.split(maxsplit=1)[0].rstrip(",")
            dims = re.search(r"[ ,](\d+)x(\d+)[ ,\[]", details + " ")
            size = (int(dims.group(1)), int(dims.group(2))) if dims else None
            rate = re.search(r" (\d+(?:\.\d+)?) fps", details) or re.search(r" (\d+(?:\.\d+)?) tbr", details)
            fps = float(rate.group(1)) if rate else None
    seconds = None
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return Probe(container.group(1), seconds, video, size, fps, audio, codec)


def is_still_image(info: Probe) -> bool:
    return any(sign in info.container for sign in STILL_IMAGE_DEMUXERS)


def content_name(info: Probe) -> str:
    """The container as a user would name it: "png" rather than ffmpeg's "png_pipe", "MOV/MP4 video" rather than
    its demuxer list "mov,mp4,m4a,3gp,3g2,mj2"."""
    names = [name.replace("_pipe", "") for name in info.container.split(",")]
    if len(names) == 1:
        return names[0]
    return "/".join(name.upper() for name in names[:2]) + (" video" if info.video_stream is not None else "")


def read_frame(path: Path, stream: int, time_s: float) -> Optional[Image.Image]:
    """The frame shown at `time_s` as RGB, or None when the stream has no frame there."""
    out, stderr = run_ffmpeg(path, ["-ss", f"{time_s:.3f}", "-i", str(path), "-map", f"0:{stream}",
                                    "-frames:v", "1", "-f", "image2pipe", "-c:v", "bmp", "-pix_fmt", "bgr24", "-"])
    if any(sign in stderr for sign in TRUNCATION_SIGNS):
        raise CorruptFileError(path, f"is truncated or damaged ({_reason(stderr)})")
    if not out:
        return None
    with Image.open(io.BytesIO(out)) as frame:
        return frame.convert("RGB")


def decode_audio(path: Path, stream: Optional[int], sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at `sample_rate` from one audio stream (the first when None), at most `max_seconds`."""
    mapping = f"0:{stream}" if stream is not None else "0:a:0"
    out, _ = run_ffmpeg(path, ["-i", str(path), "-map", mapping, "-vn", "-ac", "1", "-ar", str(sample_rate),
                               "-t", f"{max_seconds:.3f}", "-f", "f32le", "-"])
    return np.frombuffer(out, dtype="<f4").astype(np.float32)


def count_seconds(path: Path) -> float:
    """Duration found by decoding, for containers that do not state one."""
    import imageio_ffmpeg

    try:
        return float(imageio_ffmpeg.count_frames_and_secs(str(path))[1])
    except Exception as e:
        raise CorruptFileError(path, f"cannot be decoded to find its length ({_reason(str(e))})") from e


def run_ffmpeg(path: Path, args: list[str], loglevel: str = "error", check: bool = True) -> tuple[bytes, str]:
    """ffmpeg's stdout and stderr for a job on `path` (decoding here, the app's playback copies too); a failed run
    is a CorruptFileError unless `check` is off (probing fails by design: it names no output)."""
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", loglevel, *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise MediaError(path, f"took longer than {TIMEOUT_S:g} s to decode") from e
    except OSError as e:
        raise MediaError(path, f"cannot run ffmpeg to decode it ({e})") from e
    stderr = done.stderr.decode("utf-8", "replace")
    if check and done.returncode != 0:
        raise CorruptFileError(path, f"cannot be decoded ({_reason(stderr)})")
    return done.stdout, stderr


def _reason(stderr: str) -> str:
    """ffmpeg's most telling line: a sign of truncation, else the error, else the first line; without the
    '[component @ 0x...]' prefix."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", line).strip() for line in stderr.splitlines()]
    lines = [line.replace("Error opening input: ", "") for line in lines
             if line and not line.startswith(("Error opening input file", "Error opening input files", "At least one"))]
    telling = [line for line in lines if any(s in line for s in TRUNCATION_SIGNS)]
    errors = [line for line in lines if "rror" in line or "Invalid" in line]
    return ((telling or errors or lines or ["unknown error"])[0])[:200]
