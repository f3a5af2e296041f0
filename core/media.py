"""Loading and validation of every input kind, shared by the CLI, the app and training.

Media code knows nothing of models: it turns a file into plain arrays and PIL images, or raises one `MediaError`
subclass whose message names the file and the problem. Each loader checks, cheapest first, the file size, the
extension, then the limits it can read from headers, and only then decodes. Library exceptions are wrapped
(`raise ... from e`) so callers need to catch `MediaError` alone. docs/LIMITS.md lists the limits.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

from core import media_ffmpeg
from core.media_checks import (DEFAULT_LIMITS, KIND_EXTENSIONS, CorruptFileError, EmptyFileError,
                               InvalidContentError, LimitExceededError, MediaError, MediaLimits, PathLike,
                               UnsupportedFormatError, check_file, detect_kind, figure_over, first_line)
from core.media_points import PointCloud, farthest_point_sample, load_points, normalize_to_unit_sphere

__all__ = [
    "MediaError", "EmptyFileError", "UnsupportedFormatError", "CorruptFileError", "LimitExceededError",
    "InvalidContentError", "MediaLimits", "DEFAULT_LIMITS", "KIND_EXTENSIONS", "detect_kind", "file_digest",
    "load_image", "load_audio", "VideoClip", "load_video", "PointCloud", "load_points",
    "normalize_to_unit_sphere", "farthest_point_sample", "SILENCE_PEAK",
]

SILENCE_PEAK = 1e-4
"""Audio whose loudest sample is below this (about -80 dBFS) is treated as silence."""

WHITE = (255, 255, 255)


def file_digest(path: PathLike) -> str:
    """SHA-256 of the file's bytes: the encoder cache's key, so a renamed copy of an upload still hits."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise MediaError(path, f"cannot be read ({e.strerror or e})") from e
    return digest.hexdigest()


def load_image(path: PathLike, limits: MediaLimits = DEFAULT_LIMITS) -> Image.Image:
    """An RGB image: EXIF orientation applied, transparency composited on white, the first frame of an animation.

    The pixel count is read from the header and checked before the pixels are decoded.
    """
    p = check_file(path, "image", limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own pixel limit applies below
            im = Image.open(p)
        with im:
            width, height = im.size
            _check_image_pixels(p, width, height, limits)
            im.load()
            return _to_rgb(_apply_exif_orientation(im))
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        stated = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(stated.group(1)) if stated else float("inf")
        raise LimitExceededError(p, f"the image has {pixels / 1e6:.0f} megapixels, over the "
                                    f"{limits.max_image_pixels / 1e6:g} megapixel limit", "max_image_pixels",
                                 pixels, limits.max_image_pixels) from e
    except Image.UnidentifiedImageError as e:
        raise CorruptFileError(p, f"is not a readable {p.suffix[1:].upper()} image "
                                  f"(the content is not an image format PIL knows)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptFileError(p, f"is truncated or damaged ({first_line(e)})") from e


def _check_image_pixels(path: Path, width: int, height: int, limits: MediaLimits, what: str = "image") -> None:
    if width * height > limits.max_image_pixels:
        megapixels = figure_over(width * height / 1e6, limits.max_image_pixels / 1e6)
        raise LimitExceededError(path, f"the {what} is {width}x{height} = {megapixels} megapixels, over the "
                                       f"{limits.max_image_pixels / 1e6:g} megapixel limit",
                                 "max_image_pixels", width * height, limits.max_image_pixels)


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a damaged EXIF block costs only the orientation, not the picture
        return im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit greyscale (PNG) is scaled down, alpha is composited on white."""
    if im.mode.startswith("I"):
        values = np.asarray(im, dtype=np.float64)
        peak = 255.0 if values.max() <= 255 else 65535.0
        im = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def load_audio(path: PathLike, sample_rate: int = 16000, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Mono float32 samples at `sample_rate`: channels averaged, resampled; silence and over-long clips refused.

    wav, flac and ogg are read with soundfile; mp3, and files whose content is not what their extension says,
    with ffmpeg (so libsndfile never guesses at them and prints libmpg123's warnings to the user's terminal).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    p = check_file(path, "audio", limits)
    samples = None
    if _has_soundfile_signature(p):
        samples = _read_with_soundfile(p, sample_rate, limits)
    if samples is None:
        samples = _read_with_ffmpeg(p, sample_rate, limits)
    if not np.isfinite(samples).all():
        raise InvalidContentError(p, "contains invalid (NaN or infinite) samples")
    if len(samples) == 0:
        raise InvalidContentError(p, "contains no audio samples")
    if np.abs(samples).max() < SILENCE_PEAK:
        raise InvalidContentError(p, "is silent: there is no sound to listen to")
    return samples


SOUNDFILE_SIGNATURES = {".wav": (b"RIFF", b"RIFX", b"RF64"), ".flac": (b"fLaC", b"ID3"), ".ogg": (b"OggS",)}


def _has_soundfile_signature(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4).startswith(SOUNDFILE_SIGNATURES.get(path.suffix.lower(), ()))


def _read_with_soundfile(path: Path, sample_rate: int, limits: MediaLimits) -> Optional[np.ndarray]:
    """Samples, or None when libsndfile does not recognise the content (then ffmpeg gets a try)."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            rate, declared = f.samplerate, f.frames
            _check_audio_seconds(path, declared / rate, limits)
            data = f.read(dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as e:
        if e.code in (1, 4):  # SF_ERR_UNRECOGNISED_FORMAT, SF_ERR_UNSUPPORTED_ENCODING
            return None
        raise CorruptFileError(path, f"is truncated or damaged ({first_line(e.error_string)})") from e
    except (RuntimeError, ValueError, TypeError) as e:
        raise CorruptFileError(path, f"is truncated or damaged ({first_line(e)})") from e
    if len(data) < declared or _riff_is_truncated(path):
        raise CorruptFileError(path, f"is truncated: it ends after {len(data) / rate:.2f} s of audio")
    return _resample(data.mean(axis=1), rate, sample_rate)


def _riff_is_truncated(path: Path) -> bool:
    """A WAV's RIFF header states the file's length; libsndfile quietly reads whatever part is there."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    stated = int.from_bytes(head[4:8], "little")
    return 0 < stated < 0xFFFFFFFF and path.stat().st_size < stated + 8


def _read_with_ffmpeg(path: Path, sample_rate: int, limits: MediaLimits) -> np.ndarray:
    info = media_ffmpeg.probe(path, f"{path.suffix[1:].upper()} audio file")
    if info.audio_stream is None:
        raise CorruptFileError(path, f"holds no audio: its content is {media_ffmpeg.content_name(info)}, not sound")
    if info.duration_s is not None:
        _check_audio_seconds(path, info.duration_s, limits)
    # Without a stated duration, decode a little past the limit to find out whether it is over.
    samples = media_ffmpeg.decode_audio(path, info.audio_stream, sample_rate, limits.max_audio_seconds + 1.0)
    _check_audio_seconds(path, len(samples) / sample_rate, limits)
    if info.duration_s is not None and len(samples) / sample_rate < 0.9 * info.duration_s - 0.05:
        raise CorruptFileError(path, f"is truncated: it ends after {len(samples) / sample_rate:.2f} s of a stated "
                                     f"{info.duration_s:.2f} s")
    return samples


def _check_audio_seconds(path: Path, seconds: float, limits: MediaLimits) -> None:
    if seconds > limits.max_audio_seconds:
        raise LimitExceededError(path, f"the audio lasts {figure_over(seconds, limits.max_audio_seconds)} s, over "
                                       f"the {limits.max_audio_seconds:g} s limit", "max_audio_seconds", seconds,
                                 limits.max_audio_seconds)


def _resample(samples: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """soxr's high-quality resampler: what librosa.resample runs by default, without librosa's 2 s import."""
    if rate == sample_rate:
        return samples.astype(np.float32)
    import soxr

    return soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32)


@dataclass
class VideoClip:
    """`frames[i]` (RGB) is the picture at (or one frame after) `times_s[i]`. A sound track is not decoded: the
    video encoders see frames only, and a sound is asked about through the audio input."""

    frames: list[Image.Image]
    times_s: list[float]
    duration_s: float
    fps: float
    codec: Optional[str] = None
    """ffmpeg's name of the video codec ("h264", "mpeg4", ...): whether a browser can play the file as it is."""


def load_video(path: PathLike, num_frames: int = 4, limits: MediaLimits = DEFAULT_LIMITS) -> VideoClip:
    """`num_frames` frames at the centres of equal spans of the clip.

    Each frame is fetched by one seeking ffmpeg call, so a long video is never decoded whole.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, not {num_frames}")
    p = check_file(path, "video", limits)
    info = media_ffmpeg.probe(p, f"{p.suffix[1:].upper()} video")
    if media_ffmpeg.is_still_image(info):
        raise CorruptFileError(p, f"holds a still image ({media_ffmpeg.content_name(info)}), not a video")
    if info.video_stream is None:
        raise InvalidContentError(p, "has no video frames" + (" (only an audio track)" if info.audio_stream
                                                              is not None else ""))
    if info.video_size is not None:
        _check_image_pixels(p, *info.video_size, limits, what="video frame")
    duration = info.duration_s or media_ffmpeg.count_seconds(p)
    if duration <= 0:
        raise InvalidContentError(p, "has no video frames (its length is zero)")
    fps = info.fps or 0.0
    _check_video_length(p, duration, fps, limits)
    times = [duration * (i + 0.5) / num_frames for i in range(num_frames)]
    return VideoClip(_sample_frames(p, info.video_stream, times), times, duration, fps, info.video_codec)


def _check_video_length(path: Path, duration: float, fps: float, limits: MediaLimits) -> None:
    if duration > limits.max_video_seconds:
        raise LimitExceededError(path, f"the video lasts {figure_over(duration, limits.max_video_seconds)} s, over "
                                       f"the {limits.max_video_seconds:g} s limit", "max_video_seconds", duration,
                                 limits.max_video_seconds)
    frames = duration * fps
    if frames > limits.max_video_frames:
        raise LimitExceededError(path, f"the video has about {figure_over(frames, limits.max_video_frames, 0)} "
                                       f"frames ({fps:g} per second), over the limit of {limits.max_video_frames:,}",
                                 "max_video_frames", frames, limits.max_video_frames)


def _sample_frames(path: Path, stream: int, times: list[float]) -> list[Image.Image]:
    """A time past the stream's last frame (its sound may run longer) repeats the frame before it."""
    frames: list[Image.Image] = []
    for t in times:
        frame = media_ffmpeg.read_frame(path, stream, t)
        if frame is None and not frames:
            frame = media_ffmpeg.read_frame(path, stream, 0.0)
        if frame is None and not frames:
            raise InvalidContentError(path, "has no video frames that can be decoded")
        frames.append(frame if frame is not None else frames[-1])
    return frames

