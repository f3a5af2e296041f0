"""Regenerate the app's example media in assets/examples: `python demo/make_examples.py`.

Small files only: a photo from scikit-image's data folder, shapes drawn in the tiny world's vocabulary, beeps
synthesised with numpy, a moving-circle video written with imageio's ffmpeg, 3D objects built with trimesh, and one
sample per modality from the tiny world the offline preset learned (fresh test-split seeds, never trained on).
Deterministic, so re-running gives the same pictures and sounds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
SAMPLE_RATE = 16000


def write_photo(target: Path) -> None:
    """scikit-image's cat (Chelsea), shrunk so the file stays small."""
    import skimage

    photo = Image.open(Path(skimage.__file__).parent / "data" / "chelsea.png").convert("RGB")
    photo.thumbnail((320, 320))
    photo.save(target, quality=88)


def write_shapes(target: Path) -> None:
    """Two red squares on the left and a blue circle on the right, on white."""
    picture = Image.new("RGB", (224, 224), "white")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((20, 40, 70, 90), fill=(220, 30, 30))
    draw.rectangle((30, 130, 80, 180), fill=(220, 30, 30))
    draw.ellipse((130, 70, 200, 140), fill=(30, 60, 220))
    picture.save(target)


def write_beeps(target: Path, count: int = 3) -> None:
    """`count` short high beeps (880 Hz) with gaps, 2 s of 16 kHz mono."""
    import soundfile

    samples = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    beep = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.minimum(1.0, np.minimum(beep, beep[::-1]) / 0.01)
    for i in range(count):
        start = int((0.2 + 0.55 * i) * SAMPLE_RATE)
        samples[start:start + len(beep)] = 0.5 * envelope * np.sin(2 * np.pi * 880 * beep)
    soundfile.write(target, samples, SAMPLE_RATE, subtype="PCM_16")


def write_moving_circle(target: Path, seconds: float = 2.0, fps: int = 12) -> None:
    """A red circle moving from left to right over a white 128x128 frame."""
    import imageio.v2 as imageio

    frames = []
    count = int(seconds * fps)
    for i in range(count):
        frame = Image.new("RGB", (128, 128), "white")
        x = 16 + (128 - 48) * i / (count - 1)
        ImageDraw.Draw(frame).ellipse((x - 14, 50, x + 14, 78), fill=(220, 30, 30))
        frames.append(np.asarray(frame))
    imageio.mimwrite(target, frames, fps=fps, codec="libx264", quality=7, macro_block_size=16,
                     ffmpeg_log_level="error")


def write_cone_mesh(target: Path) -> None:
    """A yellow cone as a .glb mesh (a viewer's mesh example), turned upright for glTF's y-up convention."""
    import trimesh

    cone = trimesh.creation.cone(radius=0.5, height=1.0, sections=48)
    cone.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    cone.visual.face_colors = [240, 200, 40, 255]
    cone.export(str(target))


def write_torus_points(target: Path, count: int = 4096) -> None:
    """A green-to-purple torus as a bare .ply point cloud with per-point colours."""
    import trimesh

    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.2)
    points, _ = trimesh.sample.sample_surface(torus, count, seed=0)
    mix = ((points[:, 0] - points[:, 0].min()) / np.ptp(points[:, 0]))[:, None]
    colours = (1 - mix) * np.array([40, 180, 60]) + mix * np.array([150, 50, 200])
    rgba = np.hstack([colours, np.full((count, 1), 255)]).astype(np.uint8)
    trimesh.PointCloud(points, colors=rgba).export(str(target))


WORLD_FIRST_INDEX = 950_000
"""Tiny-world examples come from test-split indices from here on: far past any generated test set."""


def world_sample(modality: str, wanted, target: Path) -> None:
    """Copy the first fresh tiny-world sample of `modality` whose properties satisfy `wanted` to `target`."""
    import shutil
    import tempfile

    from train.world.dataset import GENERATORS, SCENE_STREAM, make_sample, sample_rng, sample_seed

    for index in range(WORLD_FIRST_INDEX, WORLD_FIRST_INDEX + 10_000):
        properties = GENERATORS[modality].sample_scene(sample_rng(0, modality, sample_seed("test", index),
                                                                  SCENE_STREAM))
        if wanted(properties):
            with tempfile.TemporaryDirectory() as folder:
                shutil.copyfile(make_sample(folder, "test", modality, 0, index).path, target)
            return
    raise ValueError(f"no fresh {modality} sample matches")


def _objects(properties: dict) -> list[tuple[str, str]]:
    return [(o["colour"], o["shape"]) for o in properties["objects"]]


WRITERS = {
    "world_picture.jpg": lambda t: world_sample(
        "image", lambda p: [(g["colour"], g["shape"], g["count"]) for g in p["groups"]] == [("red", "car", 1)], t),
    "world_siren.wav": lambda t: world_sample("audio", lambda p: p["kind"] == "siren" and p["events"] == 2, t),
    "world_spoken.wav": lambda t: world_sample("audio", lambda p: p["kind"] == "speech", t),
    "world_video.mp4": lambda t: world_sample(
        "video", lambda p: p["motion"] == "left" and p["count"] == 1 and p["speed"] == "fast", t),
    "world_scene.npy": lambda t: world_sample(
        "points", lambda p: len(p["objects"]) == 2 and {s for _, s in _objects(p)} == {"chair", "table"}, t),

    "cat.jpg": write_photo,
    "shapes.png": write_shapes,
    "beeps.wav": write_beeps,
    "moving_circle.mp4": write_moving_circle,
    "cone.glb": write_cone_mesh,
    "torus_points.ply": write_torus_points,
}


def main() -> int:
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for name, write in WRITERS.items():
        write(EXAMPLES / name)
        print(f"{EXAMPLES / name}: {(EXAMPLES / name).stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
