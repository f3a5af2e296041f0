"""2D drawings of every vocabulary object, for images and video frames.

Each object is a list of parts in a local frame (x right, y down, the object fills [-1, 1] x [-1, 1]); drawing
rotates, scales by the object's radius in pixels and moves it to its centre. Parts are in the object's colour, with
a few small details (doors, wheels, outlines) in a darker tone so that composites read as what they are while the
object's colour stays dominant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw


@dataclass(frozen=True)
class Part:
    kind: str
    """"polygon" (points), "ellipse" (centre, radii) or "ring" (centre, radius, width: an outlined circle)."""
    points: tuple[tuple[float, float], ...] = ()
    centre: tuple[float, float] = (0.0, 0.0)
    radii: tuple[float, float] = (0.0, 0.0)
    width: float = 0.0
    detail: bool = False


def _box(x0: float, y0: float, x1: float, y1: float, detail: bool = False) -> Part:
    return Part("polygon", ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), detail=detail)


def _poly(*points: tuple[float, float], detail: bool = False) -> Part:
    return Part("polygon", tuple(points), detail=detail)


def _disc(x: float, y: float, rx: float, ry: float | None = None, detail: bool = False) -> Part:
    return Part("ellipse", centre=(x, y), radii=(rx, rx if ry is None else ry), detail=detail)


PARTS: dict[str, tuple[Part, ...]] = {
    "cube": (_box(-0.85, -0.85, 0.85, 0.85),),
    "sphere": (_disc(0, 0, 0.92),),
    "cone": (_poly((0, -0.95), (0.92, 0.8), (-0.92, 0.8)),),
    "cylinder": (_box(-0.6, -0.62, 0.6, 0.72), _disc(0, 0.72, 0.6, 0.22), _disc(0, -0.62, 0.6, 0.22),
                 Part("ring", centre=(0, -0.62), radii=(0.6, 0.22), width=0.06, detail=True)),
    "torus": (Part("ring", centre=(0, 0), radii=(0.76, 0.76), width=0.34),),
    "tree": (_box(-0.16, 0.4, 0.16, 0.97, detail=True), _poly((0, -0.55), (0.88, 0.5), (-0.88, 0.5)),
             _poly((0, -0.97), (0.7, -0.1), (-0.7, -0.1))),
    "house": (_box(-0.72, -0.08, 0.72, 0.95), _poly((-0.95, -0.05), (0, -0.95), (0.95, -0.05)),
              _box(-0.16, 0.45, 0.16, 0.95, detail=True), _box(0.3, 0.12, 0.55, 0.35, detail=True)),
    "table": (_box(-0.95, -0.35, 0.95, -0.12), _box(-0.85, -0.12, -0.68, 0.9), _box(0.68, -0.12, 0.85, 0.9)),
    "chair": (_box(-0.55, -0.95, -0.38, 0.9), _box(-0.55, 0.02, 0.55, 0.2), _box(0.4, 0.2, 0.55, 0.9),
              _box(-0.38, -0.9, 0.1, -0.75, detail=True)),
    "snowman": (_disc(0, 0.5, 0.45), _disc(0, -0.14, 0.33), _disc(0, -0.68, 0.26),
                _disc(-0.09, -0.72, 0.05, detail=True), _disc(0.09, -0.72, 0.05, detail=True)),
    "lamp": (_poly((-0.32, -0.95), (0.32, -0.95), (0.62, -0.3), (-0.62, -0.3)), _box(-0.07, -0.3, 0.07, 0.8),
             _box(-0.45, 0.78, 0.45, 0.95)),
    "car": (_box(-0.95, -0.1, 0.95, 0.42), _poly((-0.52, -0.1), (-0.3, -0.58), (0.34, -0.58), (0.56, -0.1)),
            _poly((-0.2, -0.5), (0.25, -0.5), (0.4, -0.14), (-0.36, -0.14), detail=True),
            _disc(-0.55, 0.48, 0.24, detail=True), _disc(0.55, 0.48, 0.24, detail=True)),
}

ROTATABLE = frozenset({"cube", "cone"})
"""Shapes that read the same at any angle; the rest stay nearly upright (a tree on its side is not a tree)."""


def detail_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A darker tone of the colour (a lighter one for very dark colours)."""
    if sum(rgb) / 3 < 60:
        return tuple(min(255, c + 80) for c in rgb)
    return tuple(int(c * 0.55) for c in rgb)


def _ellipse_points(centre: tuple[float, float], radii: tuple[float, float], n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.cos(t), centre[1] + radii[1] * np.sin(t)], axis=1)


def draw_object(draw: ImageDraw.ImageDraw, shape: str, centre: tuple[float, float], radius: float,
                rgb: tuple[int, int, int], angle: float = 0.0) -> None:
    """Draw one object with its bounding box about centre +- radius pixels, rotated by `angle` degrees."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rotation = np.array([[cos, -sin], [sin, cos]]) * radius
    offset = np.asarray(centre, dtype=float)

    def place(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in (np.asarray(points) @ rotation.T + offset)]

    dark = detail_colour(rgb)
    for part in PARTS[shape]:
        fill = dark if part.detail else rgb
        if part.kind == "polygon":
            draw.polygon(place(np.array(part.points)), fill=fill)
        elif part.kind == "ellipse":
            draw.polygon(place(_ellipse_points(part.centre, part.radii)), fill=fill)
        else:
            width = max(1, round(part.width * radius))
            outline = place(_ellipse_points(part.centre, part.radii, n=48))
            draw.line(outline + outline[:1], fill=fill, width=width, joint="curve")
