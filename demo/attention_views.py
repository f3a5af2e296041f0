"""The Attention tab's figures for one answered turn: where each Q-Former looked, drawn on that turn's media.

Every modality of the turn gets its view (image heatmap, audio curve on the spectrogram, video frame strip, 3D
cloud coloured by attention), plus the CMAA matrix when CMAA was on; views the turn lacks are left out.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import plotly.graph_objects as go

from core import media
from core.schema import CmaaAttention, ModalityAttention
from demo import attention, plots
from demo.session import Turn

AUDIO_SAMPLE_RATE = 16000
VIEWS = ("image", "audio", "video", "points", "cmaa")
NAMES = {"image": "image", "audio": "audio", "video": "video", "points": "3D object", "cmaa": "CMAA"}


def attention_figures(turn: Optional[Turn], layer: int = -1,
                      query: str = attention.AVERAGE) -> dict[str, go.Figure]:
    """Figures for the views the turn has (its media with attention records, CMAA when it was on), keyed by view,
    for `layer` and `query` (a query label or the average). Empty when there is nothing to draw."""
    if turn is None or turn.result is None:
        return {}
    figures = {}
    for modality, record in turn.result.attention.items():
        title = f"{NAMES[modality]}: layer {_layer_label(record, layer)}, {query}"
        figures[modality] = DRAWERS[modality](record, turn.media[modality], layer, query, title)
    if turn.result.cmaa_attention:
        figures["cmaa"] = cmaa_figure(turn.result.cmaa_attention)
    return figures


def attention_status(turn: Optional[Turn]) -> str:
    """One line above the views: what they show, or why there is nothing."""
    if turn is None or turn.result is None:
        return "Ask a question first: the attention of the last answer appears here."
    if not turn.result.attention:
        if turn.media:
            return ("The last answer used the linear-projection baseline, which has no attention: switch the "
                    "projection back to the Q-Former to see where each modality looked.")
        return "The last answer had no media, so there is no attention to show."
    shown = [NAMES[m] for m in VIEWS if m in turn.result.attention or (m == "cmaa" and turn.result.cmaa_attention)]
    return f"Attention of the last answer ({turn.question!r}) over: {', '.join(shown)}."


def _layer_label(record: ModalityAttention, layer: int) -> str:
    return str(layer % attention.layer_count(record))


def image_view(record: ModalityAttention, path: str, layer: int, query: str, title: str) -> go.Figure:
    grids = attention.as_grid(attention.select(record, layer, query), record.grid_hw)
    return plots.image_figure(np.asarray(media.load_image(path)), grids[0], title=title)


def audio_view(record: ModalityAttention, path: str, layer: int, query: str, title: str) -> go.Figure:
    curve = attention.over_time(attention.select(record, layer, query), record.segment_seconds)
    waveform = media.load_audio(path, sample_rate=AUDIO_SAMPLE_RATE)
    return plots.spectrogram_figure(waveform, AUDIO_SAMPLE_RATE, attention=curve, segments=record.segment_seconds, title=title)


def video_view(record: ModalityAttention, path: str, layer: int, query: str, title: str) -> go.Figure:
    grids = attention.as_grid(attention.select(record, layer, query), record.grid_hw)
    clip = media.load_video(path, num_frames=grids.shape[0])
    return plots.frame_strip_figure([np.asarray(f) for f in clip.frames], grids, clip.times_s, title=title)


def points_view(record: ModalityAttention, path: str, layer: int, query: str, title: str) -> go.Figure:
    values = attention.per_point(attention.select(record, layer, query)[0], record.group_centres, record.points)
    return plots.point_cloud_figure(record.points, values=values, title=title)


DRAWERS = {"image": image_view, "audio": audio_view, "video": video_view, "points": points_view}


def cmaa_figure(records: dict[str, CmaaAttention]) -> go.Figure:
    """The first modality's CMAA matrix (every modality shares the instruction tokens)."""
    modality, record = next(iter(records.items()))
    weights = np.asarray(record.weights, dtype=np.float32)
    weights = weights.reshape(-1, weights.shape[-2], weights.shape[-1]).mean(0)
    return plots.matrix_figure(weights, plots.readable_tokens(record.instruction_tokens),
                               title=f"CMAA ({NAMES[modality]}): query x instruction token")
