"""Tiny-world videos: one moving object, sometimes with a second one standing still; H.264 MP4 at 4 fps.

The moving object goes left, right, up or down, grows, shrinks or changes colour, slowly or fast. Every object is
stored with its state at the start and the end of its change, so a frame is a plain interpolation of the record.
"""
from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw

from train.world.backgrounds import render_background, sample_background
from train.world.image import IMAGE_SIZE, RADIUS_PX, add_noise, rotation_for
from train.world.shapes2d import draw_object
from train.world.vocabulary import COLOURS, MOTIONS, SHAPES, SIZES, SPEEDS

EXTENSION = "mp4"
VIDEO_SIZE = 160
FRAMES = 10
FPS = 4
MAX_NOISE_SIGMA = 4.0
TRAVEL = {"slow": (0.22, 0.30), "fast": (0.50, 0.60)}
"""Distance a moving object covers over the clip, as a fraction of the frame side."""
SCALE_FACTOR = {"slow": (1.35, 1.5), "fast": (2.0, 2.4)}
"""How many times bigger (grow) or smaller (shrink) the object ends."""
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
ENCODER_ARGS = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
                "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]
"""One encoder thread and bit-exact muxing, so the same record gives the same file."""


def _radius(size: str, rng: np.random.Generator) -> float:
    return float(rng.uniform(*RADIUS_PX[size])) * VIDEO_SIZE / IMAGE_SIZE


def _mover(rng: np.random.Generator, motion: str, speed: str) -> dict:
    shape = list(SHAPES)[int(rng.integers(len(SHAPES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    size = SIZES[int(rng.integers(2))] if motion not in ("grow", "shrink") else None
    radius = _radius(size, rng) if size else 0.0
    radius_end, colour_end, frames = radius, colour, [0, FRAMES - 1]
    if motion == "grow":
        radius = float(rng.uniform(9.0, 11.5))
        radius_end = radius * float(rng.uniform(*SCALE_FACTOR[speed]))
    elif motion == "shrink":
        radius = float(rng.uniform(20.0, 25.0))
        radius_end = radius / float(rng.uniform(*SCALE_FACTOR[speed]))
    elif motion == "change colour":
        colour_end = [c for c in COLOURS if c != colour][int(rng.integers(len(COLOURS) - 1))]
        if speed == "fast":
            first = int(rng.integers(2, FRAMES - 3))
            frames = [first, first + 1]
    biggest = max(radius, radius_end) + 2
    start = rng.uniform(biggest, VIDEO_SIZE - biggest, size=2)
    end = start.copy()
    if motion in STEP:
        travel = float(rng.uniform(*TRAVEL[speed])) * VIDEO_SIZE
        direction = np.array(STEP[motion], dtype=float)
        low, high = biggest, VIDEO_SIZE - biggest - travel
        axis = 0 if direction[0] else 1
        start[axis] = rng.uniform(low, high) if direction[axis] > 0 else rng.uniform(low + travel, high + travel)
        end = start + direction * travel
    return {"shape": shape, "name": SHAPES[shape].name("video"), "colour": colour, "colour_end": colour_end,
            "size": size, "role": "moving", "motion": motion, "start": [round(float(v), 2) for v in start],
            "end": [round(float(v), 2) for v in end], "radius_start": round(radius, 2),
            "radius_end": round(radius_end, 2), "change_frames": frames, "angle": round(rotation_for(shape, rng), 1)}


def _distance_to_path(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    segment = end - start
    t = 0.0 if not segment.any() else float(np.clip((point - start) @ segment / (segment @ segment), 0, 1))
    return float(np.linalg.norm(point - (start + t * segment)))


def _still(rng: np.random.Generator, mover: dict) -> dict | None:
    """A second object that never touches the mover's path, or None when this draw does not fit."""
    shape = [s for s in SHAPES if s != mover["shape"]][int(rng.integers(len(SHAPES) - 1))]
    colours = [c for c in COLOURS if c not in (mover["colour"], mover["colour_end"])]
    colour = colours[int(rng.integers(len(colours)))]
    size = SIZES[int(rng.integers(2))]
    radius = _radius(size, rng)
    centre = rng.uniform(radius + 2, VIDEO_SIZE - radius - 2, size=2)
    clearance = radius + max(mover["radius_start"], mover["radius_end"]) + 4
    if _distance_to_path(centre, np.array(mover["start"]), np.array(mover["end"])) < clearance:
        return None
    point = [round(float(v), 2) for v in centre]
    return {"shape": shape, "name": SHAPES[shape].name("video"), "colour": colour, "colour_end": colour,
            "size": size, "role": "still", "motion": None, "start": point, "end": point,
            "radius_start": round(radius, 2), "radius_end": round(radius, 2), "change_frames": [0, FRAMES - 1],
            "angle": round(rotation_for(shape, rng), 1)}


def sample_scene(rng: np.random.Generator) -> dict:
    """The properties record of a new video."""
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    speed = SPEEDS[int(rng.integers(len(SPEEDS)))]
    objects = [_mover(rng, motion, speed)]
    if rng.random() < 0.4:
        for _ in range(20):
            still = _still(rng, objects[0])
            if still is not None:
                objects.append(still)
                break
    order = rng.permutation(len(objects))
    return {"width": VIDEO_SIZE, "height": VIDEO_SIZE, "fps": FPS, "frames": FRAMES, "duration": FRAMES / FPS,
            "background": sample_background(rng), "noise": round(float(rng.uniform(0, MAX_NOISE_SIGMA)), 2),
            "motion": motion, "speed": speed, "count": len(objects), "objects": [objects[i] for i in order]}


def object_state(obj: dict, frame: int) -> tuple[tuple[float, float], float, tuple[int, int, int]]:
    """Centre, radius and colour of an object in a frame."""
    first, last = obj["change_frames"]
    t = min(max((frame - first) / max(last - first, 1), 0.0), 1.0)
    centre = tuple(a + t * (b - a) for a, b in zip(obj["start"], obj["end"]))
    radius = obj["radius_start"] + t * (obj["radius_end"] - obj["radius_start"])
    begin, finish = COLOURS[obj["colour"]], COLOURS[obj["colour_end"]]
    colour = tuple(int(round(a + t * (b - a))) for a, b in zip(begin, finish))
    return centre, radius, colour


def render_frames(properties: dict, rng: np.random.Generator) -> list[Image.Image]:
    """Every frame of the record, noise included."""
    background = render_background(properties["background"], properties["width"], properties["height"])
    frames = []
    for index in range(properties["frames"]):
        frame = background.copy()
        draw = ImageDraw.Draw(frame)
        for obj in properties["objects"]:
            centre, radius, colour = object_state(obj, index)
            draw_object(draw, obj["shape"], centre, radius, colour, obj["angle"])
        frames.append(add_noise(frame, properties["noise"], rng))
    return frames


def write(properties: dict, rng: np.random.Generator, path: str) -> None:
    frames = render_frames(properties, rng)
    size = f"{properties['width']}x{properties['height']}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", size, "-r", str(properties["fps"]), "-i", "-", *ENCODER_ARGS, path]
    pixels = b"".join(np.asarray(frame).tobytes() for frame in frames)
    result = subprocess.run(command, input=pixels, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {result.stderr.decode(errors='replace').strip()}")

