"""Tiny-world images: one or two groups of identical objects on a varied background, 224 x 224 JPEG.

A group shares shape, colour and size and sits in one region (left, right, top, bottom, center); two groups differ
in shape and region. At most four objects in all, so counts stay in the vocabulary.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from train.world.backgrounds import render_background, sample_background
from train.world.shapes2d import ROTATABLE, draw_object
from train.world.vocabulary import COLOURS, IMAGE_POSITIONS, MAX_IMAGE_OBJECTS, SHAPES, SIZES

EXTENSION = "jpg"
JPEG_OPTIONS = {"format": "JPEG", "quality": 95, "subsampling": 0}
"""Full-resolution chroma keeps small objects' colours intact; PNG was 10x slower to write for noisy pictures."""
IMAGE_SIZE = 224
RADIUS_PX = {"small": (11.0, 17.0), "large": (26.0, 37.0)}
"""Half the object's extent in pixels at IMAGE_SIZE, per size word."""
ANCHORS = {"left": (0.2, 0.5), "right": (0.8, 0.5), "top": (0.5, 0.2), "bottom": (0.5, 0.8), "center": (0.5, 0.5)}
"""Region centres as fractions of the side; an object group belongs to the region whose anchor is nearest."""
MAX_NOISE_SIGMA = 6.0


def nearest_region(x: float, y: float, size: float) -> str:
    """The region name whose anchor is closest to the pixel (x, y)."""
    return min(ANCHORS, key=lambda name: math.dist((x / size, y / size), ANCHORS[name]))


def rotation_for(shape: str, rng: np.random.Generator) -> float:
    """A drawing angle in degrees: free for shapes that read the same rotated, a slight tilt otherwise."""
    if shape == "cube":
        return float(rng.uniform(0, 90))
    if shape in ROTATABLE:
        return float(rng.uniform(-25, 25))
    return float(rng.uniform(-8, 8))


def _group_offsets(count: int, region: str, spacing: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Object centres around (0, 0): a column in side regions, a row at top/bottom, either in the center."""
    vertical = region in ("left", "right") or (region == "center" and rng.random() < 0.5)
    if count == 4:
        h = spacing / 2
        return [(-h, -h), (h, -h), (-h, h), (h, h)]
    if count == 3 and rng.random() < 0.5:
        h = spacing / 2
        return [(-h, h * 0.87), (h, h * 0.87), (0.0, -h * 0.87)]
    line = [(i - (count - 1) / 2) * spacing for i in range(count)]
    return [(0.0, t) if vertical else (t, 0.0) for t in line]


def _layout(groups: list[dict], rng: np.random.Generator, size: int) -> list[dict] | None:
    """Place every object, or None when this draw breaks a rule (wrong region, hidden object)."""
    objects = []
    for index, group in enumerate(groups):
        radius = float(rng.uniform(*RADIUS_PX[group["size"]])) * size / IMAGE_SIZE
        spacing = 2 * radius * float(rng.uniform(0.88, 1.15))
        ax, ay = ANCHORS[group["position"]]
        ax, ay = (ax + rng.uniform(-0.05, 0.05)) * size, (ay + rng.uniform(-0.05, 0.05)) * size
        centres = []
        for dx, dy in _group_offsets(group["count"], group["position"], spacing, rng):
            x = float(np.clip(ax + dx + rng.uniform(-0.12, 0.12) * radius, radius + 2, size - radius - 2))
            y = float(np.clip(ay + dy + rng.uniform(-0.12, 0.12) * radius, radius + 2, size - radius - 2))
            centres.append((x, y))
        mean_x, mean_y = np.mean(centres, axis=0)
        if nearest_region(mean_x, mean_y, size) != group["position"]:
            return None
        for x, y in centres:
            objects.append({"shape": group["shape"], "name": group["name"], "colour": group["colour"],
                            "size": group["size"], "position": group["position"], "group": index,
                            "center": [round(x, 2), round(y, 2)], "radius": round(radius, 2),
                            "angle": round(rotation_for(group["shape"], rng), 1)})
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            limit = 1.6 * a["radius"] if a["group"] == b["group"] else 0.9 * (a["radius"] + b["radius"])
            if math.dist(a["center"], b["center"]) < limit:
                return None
    return objects


def sample_groups(rng: np.random.Generator, max_objects: int = MAX_IMAGE_OBJECTS) -> list[dict]:
    """One or two object groups: {"shape", "name", "colour", "size", "count", "position"}."""
    group_count = 1 if rng.random() < 0.55 else 2
    shapes = rng.choice(list(SHAPES), size=group_count, replace=False)
    positions = rng.choice(IMAGE_POSITIONS, size=group_count, replace=False)
    groups, left = [], max_objects
    for i in range(group_count):
        size = SIZES[int(rng.integers(2))]
        most = left - (group_count - 1 - i)
        if size == "large":
            most = min(most, 2)
        count = int(rng.integers(1, most + 1))
        left -= count
        groups.append({"shape": str(shapes[i]), "name": SHAPES[str(shapes[i])].name("image"),
                       "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))], "size": size, "count": count,
                       "position": str(positions[i])})
    return groups


def sample_scene(rng: np.random.Generator, size: int = IMAGE_SIZE) -> dict:
    """The properties record of a new image; every random choice of the picture is in it except pixel noise."""
    while True:
        groups = sample_groups(rng)
        objects = _layout(groups, rng, size)
        if objects is not None:
            break
    order = rng.permutation(len(objects))
    return {"width": size, "height": size, "background": sample_background(rng),
            "noise": round(float(rng.uniform(0, MAX_NOISE_SIGMA)), 2),
            "count": len(objects), "groups": groups, "objects": [objects[i] for i in order]}


def render(properties: dict, rng: np.random.Generator) -> Image.Image:
    """Draw the record: background, objects in record order, then Gaussian pixel noise."""
    width, height = properties["width"], properties["height"]
    picture = render_background(properties["background"], width, height)
    draw_objects(picture, properties["objects"])
    return add_noise(picture, properties["noise"], rng)


def draw_objects(picture: Image.Image, objects: list[dict]) -> None:
    draw = ImageDraw.Draw(picture)
    for obj in objects:
        draw_object(draw, obj["shape"], tuple(obj["center"]), obj["radius"], COLOURS[obj["colour"]], obj["angle"])


def add_noise(picture: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian grain of the given standard deviation, the same on all three channels (like sensor noise)."""
    if sigma <= 0:
        return picture
    grain = np.round(rng.standard_normal((picture.height, picture.width, 1), dtype=np.float32) * sigma)
    noisy = np.asarray(picture, dtype=np.int16) + grain.astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write(properties: dict, rng: np.random.Generator, path: str) -> None:
    render(properties, rng).save(path, **JPEG_OPTIONS)
