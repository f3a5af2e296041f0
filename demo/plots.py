"""Plotly figure builders for the previews and the attention and inspector views.

Every builder takes plain arrays (no model objects) and returns a `go.Figure` with hover values, so the views can
be tested without a model and the same builder serves a preview and its attention overlay.
"""
from __future__ import annotations

import base64
import io
from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from PIL import Image
from scipy.signal import spectrogram

MAX_PLOT_POINTS = 4096
"""Point clouds are thinned to this many points: WebGL stays smooth and the loader's sampling stays fast."""
MAX_IMAGE_SIDE = 320
"""Pictures embedded in figures are shrunk to this longest side to keep the page light."""
HEATMAP_COLOURS = "Inferno"
DYNAMIC_RANGE_DB = 80.0
"""Spectrogram colours span this far below the loudest bin, so quiet noise floors do not wash out the sound."""
_MARGIN = dict(l=10, r=10, t=40, b=10)


def placeholder_figure(message: str) -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#666"))
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), height=220, margin=_MARGIN)
    return fig


def image_data_uri(image: np.ndarray, max_side: int = MAX_IMAGE_SIDE) -> tuple[str, int, int]:
    """An RGB array as a JPEG data URI shrunk to `max_side`, with its new width and height."""
    picture = Image.fromarray(_as_uint8_rgb(image))
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{encoded}", picture.width, picture.height


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return array[..., :3]


def _add_picture_with_heatmap(fig: go.Figure, image: np.ndarray, grid: np.ndarray,
                              row: Optional[int] = None, col: Optional[int] = None,
                              show_scale: bool = True, zrange: Optional[tuple[float, float]] = None) -> None:
    """The picture, and over it a translucent heatmap whose cells stretch over the picture's pixels."""
    source, width, height = image_data_uri(image)
    where = dict(row=row, col=col) if row is not None else {}
    fig.add_trace(go.Image(source=source, hoverinfo="skip", dx=1, dy=1), **where)
    h, w = grid.shape
    zmin, zmax = zrange if zrange else (float(grid.min()), float(grid.max()))
    fig.add_trace(go.Heatmap(
        z=grid, x0=width / w / 2, dx=width / w, y0=height / h / 2, dy=height / h, opacity=0.55,
        zsmooth="best", colorscale=HEATMAP_COLOURS, zmin=zmin, zmax=zmax, showscale=show_scale,
        customdata=np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1),
        hovertemplate="cell row %{customdata[1]}, col %{customdata[0]}<br>attention %{z:.4f}<extra></extra>",
    ), **where)


def image_figure(image: np.ndarray, grid: np.ndarray, title: str = "") -> go.Figure:
    """A picture with an attention grid (h, w) laid over it."""
    fig = go.Figure()
    _add_picture_with_heatmap(fig, image, grid)
    fig.update_layout(title=title, height=420, margin=_MARGIN)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    return fig


def frame_strip_figure(frames: Sequence[np.ndarray], grids: np.ndarray, times_s: Sequence[float],
                       title: str = "") -> go.Figure:
    """Sampled video frames side by side, each with its own attention grid on one shared colour scale."""
    count = len(frames)
    fig = make_subplots(rows=1, cols=count, subplot_titles=[f"t = {t:.2f} s" for t in times_s],
                        horizontal_spacing=0.02)
    zrange = (float(np.min(grids)), float(np.max(grids)))
    for i, frame in enumerate(frames):
        _add_picture_with_heatmap(fig, frame, grids[i], row=1, col=i + 1, show_scale=(i == count - 1), zrange=zrange)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=300, margin=_MARGIN)
    return fig


def spectrogram_db(waveform: np.ndarray, sample_rate: int, max_bins: int = 128) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """Times (s), frequencies (Hz) and power in dB of a mono clip (25 ms windows, 10 ms hop), bins pooled to fit."""
    window = max(2, min(len(waveform), int(0.025 * sample_rate)))  # a clip shorter than 25 ms is one window
    hop = max(1, min(window - 1, int(0.010 * sample_rate)))
    freqs, times, power = spectrogram(np.asarray(waveform, dtype=np.float32), fs=sample_rate, nperseg=window,
                                      noverlap=window - hop)
    pool = max(1, int(np.ceil(len(freqs) / max_bins)))
    usable = (len(freqs) // pool) * pool
    freqs = freqs[:usable].reshape(-1, pool).mean(1)
    power = power[:usable].reshape(-1, pool, power.shape[1]).mean(1)
    return times, freqs, 10.0 * np.log10(power + 1e-10)


def spectrogram_figure(waveform: np.ndarray, sample_rate: int,
                       attention: Optional[tuple[np.ndarray, np.ndarray]] = None,
                       segments: Optional[Sequence[tuple[float, float]]] = None, title: str = "") -> go.Figure:
    """A clip's spectrogram; optionally attention over time (times, weights) on a second axis and segment bounds."""
    times, freqs, db = spectrogram_db(waveform, sample_rate)
    # cell edges, not centres: the columns then span the whole clip, as the attention curve and segments do (drawn
    # from centres, the last column stopped half a hop short, a visible gap on a clip of a few windows)
    edges = np.concatenate([[0.0], (times[:-1] + times[1:]) / 2, [len(waveform) / sample_rate]])
    fig = make_subplots(specs=[[{"secondary_y": attention is not None}]])
    fig.add_trace(go.Heatmap(x=edges, y=freqs, z=db, colorscale="Viridis", showscale=False,
                             zmin=float(db.max()) - DYNAMIC_RANGE_DB, zmax=float(db.max()),
                             hovertemplate="%{x:.2f} s, %{y:.0f} Hz<br>%{z:.1f} dB<extra></extra>"))
    if attention is not None:
        att_times, weights = attention
        fig.add_trace(go.Scatter(x=att_times, y=weights, mode="lines", name="attention",
                                 line=dict(color="#ff4136", width=2),
                                 hovertemplate="%{x:.2f} s<br>attention %{y:.4f}<extra></extra>"),
                      secondary_y=True)
        fig.update_yaxes(title_text="attention", secondary_y=True)
    for start, _end in list(segments or [])[1:]:
        fig.add_vline(x=start, line=dict(color="white", dash="dash", width=1))
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="frequency (Hz)", secondary_y=False)
    fig.update_layout(title=title, height=300, margin=_MARGIN, showlegend=False)
    return fig


def thin_points(count: int, max_points: int = MAX_PLOT_POINTS, seed: int = 0) -> np.ndarray:
    """Indices of at most `max_points` of `count` points, the same ones every time for the same count."""
    if count <= max_points:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=max_points, replace=False))


def point_cloud_figure(xyz: np.ndarray, rgb: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None,
                       title: str = "") -> go.Figure:
    """An interactive 3D scatter coloured by `values` if given, else by the cloud's own rgb, else by height (z)."""
    xyz = np.asarray(xyz, dtype=np.float32)
    keep = thin_points(len(xyz))
    x, y, z = xyz[keep].T
    if values is not None:
        shown = np.asarray(values, dtype=np.float32)[keep]
        marker = dict(color=shown, colorscale=HEATMAP_COLOURS, colorbar=dict(title="attention"))
        hover = "attention %{marker.color:.4f}<extra></extra>"
    elif rgb is not None:
        colours = _as_uint8_rgb(np.asarray(rgb)[keep][None])[0]
        marker = dict(color=[f"rgb({r},{g},{b})" for r, g, b in colours])
        hover = "x %{x:.2f}, y %{y:.2f}, z %{z:.2f}<extra></extra>"
    else:
        marker = dict(color=z, colorscale="Viridis", colorbar=dict(title="height (z)"))
        hover = "x %{x:.2f}, y %{y:.2f}, z %{z:.2f}<extra></extra>"
    fig = go.Figure(go.Scatter3d(x=x, y=y, z=z, mode="markers", marker=dict(size=2, **marker),
                                 hovertemplate=hover))
    # plotly's default eye (1.25 on each axis) crops a flat scene's near corner and its tick labels
    fig.update_layout(title=title, height=420, margin=_MARGIN,
                      scene=dict(aspectmode="data", camera=dict(eye=dict(x=1.6, y=1.6, z=1.1))))
    return fig


def readable_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokenizer pieces as a person reads them: byte-level BPE's space marker shown as a leading space."""
    return [token.replace("\u0120", " ").replace("\u010a", "\\n") or "\u2423" for token in tokens]


def matrix_figure(weights: np.ndarray, column_labels: Sequence[str], title: str = "") -> go.Figure:
    """A query x token attention matrix with the tokens named on the columns (CMAA)."""
    weights = np.asarray(weights, dtype=np.float32)
    columns = np.arange(weights.shape[1])
    fig = go.Figure(go.Heatmap(
        z=weights, x=columns, y=np.arange(weights.shape[0]), colorscale=HEATMAP_COLOURS,
        customdata=np.broadcast_to(np.asarray(column_labels, dtype=object)[None], weights.shape),
        hovertemplate="query %{y}, token %{customdata}<br>attention %{z:.4f}<extra></extra>",
    ))
    fig.update_xaxes(tickmode="array", tickvals=columns, ticktext=list(column_labels), title_text="instruction token")
    fig.update_yaxes(title_text="query", autorange="reversed")
    fig.update_layout(title=title, height=360, margin=_MARGIN)
    return fig


def token_nll_figure(rows: Sequence[tuple[str, Sequence[str], Sequence[float]]]) -> go.Figure:
    """One bar chart per instruction: the negative log-likelihood of each of its tokens. `rows`: (name, tokens, nll)."""
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=[name for name, _, _ in rows],
                        vertical_spacing=min(0.12, 0.6 / max(1, len(rows))))
    for i, (_name, tokens, nll) in enumerate(rows):
        positions = np.arange(len(tokens))
        fig.add_trace(go.Bar(x=positions, y=list(nll), customdata=list(tokens), marker_color="#636efa",
                             hovertemplate="%{customdata}<br>NLL %{y:.3f}<extra></extra>"), row=i + 1, col=1)
        fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=list(tokens), row=i + 1, col=1)
        fig.update_yaxes(title_text="NLL", row=i + 1, col=1)
    fig.update_layout(height=max(220, 200 * len(rows)), margin=_MARGIN, showlegend=False)
    return fig
