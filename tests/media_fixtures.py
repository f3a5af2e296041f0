"""Builders for small media files of every supported format, made on the fly so no binary fixtures are shipped.

Each builder picks the format from the path's extension and returns the path. The content is chosen so tests can
check decoding, not just shapes: images are red on the left and blue on the right, tones have a known frequency,
videos get redder over time (red = 100 x seconds), point clouds and meshes sit off-centre.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

RED, BLUE = (255, 0, 0), (0, 0, 255)
RED_PER_SECOND = 100
"""Videos from `make_video` have red = RED_PER_SECOND x t, so a frame shows the time it was taken from."""


def ffmpeg(*args: str, stdin: Optional[bytes] = None) -> None:
    """Run the ffmpeg that imageio-ffmpeg ships, failing loudly (also for fixtures the builders do not cover)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args],
                   input=stdin if stdin is not None else b"", check=True, capture_output=True)


def make_image(path, size: tuple[int, int] = (64, 48), mode: str = "RGB", exif_orientation: Optional[int] = None,
               frames: int = 1) -> Path:
    """Left half red, right half blue; `mode` "RGBA" makes the right half transparent instead; `frames` > 1 (gif)
    adds frames of other colours after the first; `exif_orientation` (jpeg) stores that EXIF tag."""
    path = Path(path)
    width, height = size
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[:, : width // 2] = RED + (255,)
    rgba[:, width // 2:] = BLUE + ((0,) if mode == "RGBA" else (255,))
    image = Image.fromarray(rgba, "RGBA")
    image = image if mode == "RGBA" else image.convert("RGB").convert(mode)
    if frames > 1:
        others = [Image.new("RGB", size, (0, 255 // i, 0)) for i in range(1, frames)]
        image.save(path, save_all=True, append_images=others, duration=100, loop=0)
    elif exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, exif=exif.tobytes())
    else:
        image.save(path)
    return path


def make_audio(path, seconds: float = 1.0, freq: float = 440.0, sample_rate: int = 16000, channels: int = 1,
               amplitude: float = 0.5) -> Path:
    """A sine tone (channel c at freq x (c+1)); wav, flac and ogg via soundfile, mp3 via ffmpeg."""
    path = Path(path)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = np.stack([amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1)
    if path.suffix.lower() == ".mp3":
        ffmpeg("-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0", str(path),
               stdin=tone.astype(np.float32).tobytes())
    else:
        import soundfile

        soundfile.write(path, tone.astype(np.float32), sample_rate)
    return path


VIDEO_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".mov": ["-c:v", "mpeg4", "-q:v", "2", "-c:a", "aac"],
    ".webm": ["-c:v", "libvpx", "-b:v", "1M", "-c:a", "libvorbis"],
    ".avi": ["-c:v", "mjpeg", "-q:v", "2", "-c:a", "pcm_s16le"],
    ".gif": [],
}


def make_video(path, seconds: float = 1.0, with_audio: bool = False, size: tuple[int, int] = (64, 64),
               fps: int = 10) -> Path:
    """Frames whose red channel is RED_PER_SECOND x t; with_audio adds a 440 Hz track."""
    path = Path(path)
    red = f"min(255,{RED_PER_SECOND}*T)"
    video = f"color=c=black:s={size[0]}x{size[1]}:r={fps}:d={seconds},format=rgb24,geq=r='{red}':g=0:b=0"
    args = ["-f", "lavfi", "-i", video]
    if with_audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", str(seconds)]
    ffmpeg(*args, *VIDEO_CODECS[path.suffix.lower()], str(path))
    return path


def cloud(n: int = 2000, seed: int = 0, with_rgb: bool = False) -> np.ndarray:
    """(n,3) points filling a 2 x 1 x 0.5 box whose corner sits at (5,5,5); with_rgb appends 0..255 colours."""
    rng = np.random.default_rng(seed)
    xyz = rng.random((n, 3)) * np.array([2.0, 1.0, 0.5]) + 5.0
    if not with_rgb:
        return xyz
    return np.concatenate([xyz, rng.integers(0, 256, (n, 3)).astype(np.float64)], axis=1)


def make_point_cloud_file(path, points: Optional[np.ndarray] = None, key: str = "points",
                          pcd_encoding: str = "ascii") -> Path:
    """Write (N,3) or (N,6) points (default `cloud()`) as .npy, .npz (under `key`), .ply, .pcd, .xyz, .txt, or .pt
    (a float32 tensor, channels first, as in Cap3D's PointCloud_pt_zips)."""
    path = Path(path)
    points = cloud() if points is None else np.asarray(points, dtype=np.float64)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, points)
    elif suffix == ".npz":
        np.savez(path, **{key: points})
    elif suffix == ".ply":
        import trimesh

        colours = points[:, 3:].astype(np.uint8) if points.shape[1] == 6 else None
        trimesh.PointCloud(points[:, :3], colors=colours).export(path)
    elif suffix == ".pcd":
        _write_pcd(path, points, pcd_encoding)
    elif suffix == ".pt":
        import torch

        torch.save(torch.tensor(points.T, dtype=torch.float32), path)
    else:
        np.savetxt(path, points, delimiter="," if suffix == ".txt" else " ")
    return path


def _write_pcd(path: Path, points: np.ndarray, encoding: str) -> None:
    fields = ["x", "y", "z"] + (["rgb"] if points.shape[1] == 6 else [])
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format", "VERSION 0.7", f"FIELDS {' '.join(fields)}",
        "SIZE " + " ".join(["4"] * len(fields)), "TYPE F F F" + (" U" if len(fields) == 4 else ""),
        "COUNT " + " ".join(["1"] * len(fields)), f"WIDTH {len(points)}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {len(points)}", f"DATA {encoding}", ""])
    columns = [points[:, i].astype(np.float32) for i in range(3)]
    if len(fields) == 4:
        r, g, b = (points[:, i].astype(np.uint32) for i in (3, 4, 5))
        columns.append((r << 16) | (g << 8) | b)
    if encoding == "ascii":
        body = "".join(" ".join(str(c[i]) for c in columns) + "\n" for i in range(len(points))).encode()
    else:
        table = np.zeros(len(points), dtype=[(f, "<u4" if f == "rgb" else "<f4") for f in fields])
        for f, column in zip(fields, columns):
            table[f] = column
        body = table.tobytes()
    path.write_bytes(header.encode() + body)


def make_mesh_file(path, colour: Optional[Sequence[int]] = None, subdivisions: int = 0) -> Path:
    """A 2 x 1 x 0.5 box centred at (5,5,5) as .obj, .stl, .ply, .glb or .off; `colour` paints its vertices;
    each subdivision multiplies the 12 faces by 4."""
    import trimesh

    path = Path(path)
    mesh = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    for _ in range(subdivisions):
        mesh = mesh.subdivide()
    mesh.apply_translation((5.0, 5.0, 5.0))
    if colour is not None:
        mesh.visual.vertex_colors = np.tile(np.append(np.asarray(colour, dtype=np.uint8), 255),
                                            (len(mesh.vertices), 1))
    mesh.export(path)
    return path


def truncate(path, fraction: float = 0.5) -> Path:
    """Cut a file to `fraction` of its bytes, as an interrupted download would."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return path
