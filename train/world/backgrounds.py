"""Backgrounds for images and video frames: plain, gradient or a soft noise texture.

Colours are muted mid-tones kept far from every vocabulary colour, so that "the colour of the object" is never the
colour of the background. A background is described by a JSON-able spec and rendered from it alone, which keeps
rendering deterministic and lets a video reuse one background for all its frames.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from train.world.vocabulary import COLOURS

BACKGROUND_KINDS = ("plain", "gradient", "noise")
MIN_DISTANCE_TO_VOCABULARY = 80.0
"""Smallest RGB distance between any background colour and any object colour."""


def _muted_colour(rng: np.random.Generator) -> list[int]:
    palette = np.array(list(COLOURS.values()), dtype=float)
    while True:
        rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.22), rng.uniform(0.42, 0.70))
        candidate = np.round(np.array(rgb) * 255)
        if np.linalg.norm(palette - candidate, axis=1).min() >= MIN_DISTANCE_TO_VOCABULARY:
            return [int(c) for c in candidate]


def sample_background(rng: np.random.Generator) -> dict:
    """A random background spec: {"kind", "colours", ...kind-specific fields}."""
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    if kind == "plain":
        return {"kind": kind, "colours": [_muted_colour(rng)]}
    colours = [_muted_colour(rng), _muted_colour(rng)]
    if kind == "gradient":
        return {"kind": kind, "colours": colours, "angle": round(float(rng.uniform(0, 360)), 1)}
    return {"kind": kind, "colours": colours, "cells": int(rng.integers(3, 10)), "seed": int(rng.integers(2**31))}


def render_background(spec: dict, width: int, height: int) -> Image.Image:
    """An RGB picture of the given size for a spec made by `sample_background`."""
    first = Image.new("RGB", (width, height), tuple(spec["colours"][0]))
    if spec["kind"] == "plain":
        return first
    if spec["kind"] == "gradient":
        angle = np.deg2rad(spec["angle"])
        along = (np.arange(width, dtype=np.float32) * np.cos(angle))[None, :] + \
            (np.arange(height, dtype=np.float32) * np.sin(angle))[:, None]
        weight = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    elif spec["kind"] == "noise":
        cells = spec["cells"]
        grid = np.random.default_rng(spec["seed"]).random((cells, cells), dtype=np.float32)
        weight = np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC))
    else:
        raise ValueError(f"unknown background kind {spec['kind']!r}; expected one of {BACKGROUND_KINDS}")
    mask = Image.fromarray(np.clip(np.round(weight * 255), 0, 255).astype(np.uint8), mode="L")
    return Image.composite(Image.new("RGB", (width, height), tuple(spec["colours"][1])), first, mask)
