"""Reduce a Q-Former attention record to the numbers one view draws: pick a layer, a query or the query average.

`ModalityAttention.weights` is (passes, layers, queries, tokens); every view wants (passes, tokens) for one layer.
Kept free of plotting so the reduction can be unit-tested on its own.
"""
from __future__ import annotations

import numpy as np

from core.schema import ModalityAttention

AVERAGE = "average"
"""The query choice that averages over all learned queries."""


def query_choices(attention: ModalityAttention) -> list[str]:
    """Labels for the query selector: the average first, then each query by number."""
    return [AVERAGE] + [f"query {i}" for i in range(attention.weights.shape[2])]


def layer_count(attention: ModalityAttention) -> int:
    return int(attention.weights.shape[1])


def select(attention: ModalityAttention, layer: int = -1, query: str = AVERAGE) -> np.ndarray:
    """(passes, tokens) weights of one layer (negative counts from the end) for one query or the average."""
    weights = np.asarray(attention.weights, dtype=np.float32)
    layers = weights.shape[1]
    if not -layers <= layer < layers:
        raise ValueError(f"layer {layer} does not exist; this record has {layers} layers")
    per_layer = weights[:, layer]
    if query == AVERAGE:
        return per_layer.mean(axis=1)
    index = int(query.split()[-1])
    if not 0 <= index < per_layer.shape[1]:
        raise ValueError(f"{query} does not exist; this record has {per_layer.shape[1]} queries")
    return per_layer[:, index]


def as_grid(values: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """(passes, h*w) -> (passes, h, w), row-major as the image encoder flattens its feature map."""
    h, w = grid_hw
    if values.shape[1] != h * w:
        raise ValueError(f"{values.shape[1]} tokens do not fill a {h}x{w} grid")
    return values.reshape(values.shape[0], h, w)


def over_time(values: np.ndarray, segment_seconds: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the passes of time segments into one curve: (times in seconds, weights).

    Each segment's tokens are spread evenly over its span; trailing zero weights are padding of shorter segments.
    """
    times, weights = [], []
    for (start, end), row in zip(segment_seconds, values):
        real = _real_tokens(row)
        times.append(start + (np.arange(real) + 0.5) * (end - start) / real)
        weights.append(row[:real])
    return np.concatenate(times), np.concatenate(weights)


def _real_tokens(row: np.ndarray) -> int:
    """How many tokens of a padded segment are real: the last non-zero weight marks the end."""
    nonzero = np.flatnonzero(row > 0)
    return int(nonzero[-1]) + 1 if nonzero.size else len(row)


def per_point(values: np.ndarray, group_centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Spread each point group's weight onto the points: every point takes the weight of its nearest group centre.

    Nearest-centre assignment colours every point, including those that no k-nearest group happened to include.
    """
    centres = np.asarray(group_centres, dtype=np.float32)
    xyz = np.asarray(points, dtype=np.float32)
    weights = np.asarray(values, dtype=np.float32).reshape(-1)
    if weights.shape[0] != centres.shape[0]:
        raise ValueError(f"{weights.shape[0]} weights for {centres.shape[0]} point groups")
    nearest = np.empty(len(xyz), dtype=np.int64)
    for start in range(0, len(xyz), 4096):
        chunk = xyz[start:start + 4096]
        nearest[start:start + 4096] = ((chunk[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return weights[nearest]
