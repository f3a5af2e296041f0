"""What every media file must pass before it is decoded, and the errors raised when it does not.

The loaders in `core.media` share these so that every bad upload, whatever its kind, fails the same way: one
`MediaError` subclass whose message is a single line naming the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]

MB = 1024 * 1024

KIND_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"),
    "audio": (".wav", ".flac", ".ogg", ".mp3"),
    "video": (".mp4", ".webm", ".avi", ".mov", ".gif"),
    "points": (".npy", ".npz", ".pt", ".ply", ".pcd", ".xyz", ".txt", ".obj", ".stl", ".glb", ".off"),
}
"""Accepted extensions per kind. `.gif` is both: a still or the first frame as an image, all frames as a video."""

KIND_NAMES = {"image": "an image", "audio": "audio", "video": "a video", "points": "a 3D object"}


class MediaError(Exception):
    """A media file that cannot be used. `str(e)` is one line: the file's name, then what is wrong with it."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        self._init_args: tuple = (self.path, problem)
        super().__init__(f"{Path(self.path).name or self.path}: {self.problem}")

    def __reduce__(self):
        """Rebuild from the constructor's arguments, so the error survives pickling (e.g. from a worker process)."""
        return type(self), self._init_args


class EmptyFileError(MediaError):
    """The file has no bytes at all."""


class UnsupportedFormatError(MediaError):
    """The extension (or a variant inside the file) is not one the loaders read."""


class CorruptFileError(MediaError):
    """The file cannot be decoded: truncated, damaged, or its content is not what its extension says."""


class InvalidContentError(MediaError):
    """The file decodes but its content is unusable: NaN coordinates, a mesh without faces, silence, no frames."""


class LimitExceededError(MediaError):
    """The file is over one of the `MediaLimits`; the message names the limit and the file's value."""

    def __init__(self, path: PathLike, problem: str, limit_name: str, value: float, limit: float) -> None:
        self.limit_name = limit_name
        self.value = value
        self.limit = limit
        super().__init__(path, f"{problem} (limit {limit_name})")
        self._init_args = (path, problem, limit_name, value, limit)


@dataclass(frozen=True)
class MediaLimits:
    """Bounds that keep one upload from exhausting memory or time. docs/LIMITS.md explains each default."""

    max_file_mb: float = 50.0
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 30.0
    max_video_seconds: float = 120.0
    max_video_frames: int = 7_200
    """Frames in the whole video (duration x frame rate): bounds the decoding work behind each sampled frame."""
    max_points: int = 2_000_000
    max_mesh_faces: int = 1_000_000

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"MediaLimits.{f.name} must be positive, not {getattr(self, f.name)!r}")


DEFAULT_LIMITS = MediaLimits()


def detect_kind(path: PathLike) -> str:
    """"image", "audio", "video" or "points" from the extension; an animated GIF counts as a video."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return "video" if _is_animated_gif(path) else "image"
    for kind, extensions in KIND_EXTENSIONS.items():
        if suffix in extensions:
            return kind
    raise UnsupportedFormatError(path, f"{_describe_suffix(suffix)} is not a supported file type; "
                                       f"{_accepted_summary()}")


def check_file(path: PathLike, kind: str, limits: MediaLimits) -> Path:
    """The checks before decoding, cheapest first: the file exists, is not empty, is under the size limit, and
    has an extension of `kind`."""
    p = Path(path)
    try:
        if p.is_dir():
            raise MediaError(path, "is a folder, not a file")
        size = p.stat().st_size
    except FileNotFoundError as e:
        raise MediaError(path, "file not found") from e
    except OSError as e:
        raise MediaError(path, f"cannot be read ({e.strerror or e})") from e
    if size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes)")
    size_mb = size / MB
    if size_mb > limits.max_file_mb:
        raise LimitExceededError(path, f"the file is {figure_over(size_mb, limits.max_file_mb)} MB, over the "
                                       f"{limits.max_file_mb:g} MB limit", "max_file_mb", size_mb, limits.max_file_mb)
    suffix = p.suffix.lower()
    if suffix not in KIND_EXTENSIONS[kind]:
        other = next((k for k, exts in KIND_EXTENSIONS.items() if suffix in exts), None)
        what = f"a {suffix} file is {KIND_NAMES[other]}, not {KIND_NAMES[kind]}" if other else \
            f"{_describe_suffix(suffix)} is not a supported file type"
        raise UnsupportedFormatError(path, f"{what}; {KIND_NAMES[kind]} can be given as "
                                           f"{', '.join(e[1:] for e in KIND_EXTENSIONS[kind])}")
    return p


def figure_over(value: float, limit: float, decimals: int = 1) -> str:
    """`value` to `decimals` places, or to more where that rounding would read as the limit itself: "40.0
    megapixels, over the 40 megapixel limit" would not tell the user by how much the file is over."""
    for places in range(decimals, decimals + 7):
        text = f"{value:,.{places}f}"
        if float(text.replace(",", "")) > limit:
            break
    return text


def first_line(error: object) -> str:
    """A library exception shortened to its first line, to quote inside a one-line MediaError message."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


def _is_animated_gif(path: PathLike) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # an unreadable GIF is reported by the loader that opens it, not here
        return False


def _describe_suffix(suffix: str) -> str:
    return f"'{suffix}'" if suffix else "a file without an extension"


def _accepted_summary() -> str:
    return "; ".join(f"{kind}: {', '.join(e[1:] for e in exts)}" for kind, exts in KIND_EXTENSIONS.items())
