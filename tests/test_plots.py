"""The app's view builders without a model: plotly figures, attention reduction, 3D preview choice, the
instruction diff and the chat's timings line."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from core.media import MediaError
from core.schema import AskResult, InstructionCandidate, ModalityAttention, OptimizerTrace
from demo import attention, plots
from demo.inspector import inspector_view, word_diff
from demo.session import ChatSession, Turn, timings_line
from demo.viewer3d import preview_3d

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _types(fig):
    return [trace.type for trace in fig.data]


def test_image_heatmap_cells_cover_the_shown_picture():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    grid = np.arange(12, dtype=float).reshape(3, 4)
    fig = plots.image_figure(image, grid)
    assert _types(fig) == ["image", "heatmap"]
    heatmap = fig.data[1]
    shown_width = plots.MAX_IMAGE_SIDE  # 640 wide is shrunk to the longest-side limit
    assert heatmap.x0 - heatmap.dx / 2 == pytest.approx(0)
    assert heatmap.x0 + heatmap.dx * 3.5 == pytest.approx(shown_width)
    assert heatmap.y0 + heatmap.dy * 2.5 == pytest.approx(480 * shown_width / 640)
    assert np.array_equal(np.asarray(heatmap.z), grid)
    assert "attention" in heatmap.hovertemplate


def test_frame_strip_has_one_picture_and_heatmap_per_frame_on_one_scale():
    frames = [np.full((64, 64, 3), i * 50, dtype=np.uint8) for i in range(4)]
    grids = np.random.default_rng(0).random((4, 7, 7))
    fig = plots.frame_strip_figure(frames, grids, [0.25, 0.75, 1.25, 1.75])
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert _types(fig).count("image") == 4 and len(heatmaps) == 4
    assert [h.showscale for h in heatmaps] == [False, False, False, True]
    assert {(h.zmin, h.zmax) for h in heatmaps} == {(grids.min(), grids.max())}
    assert [a.text for a in fig.layout.annotations] == ["t = 0.25 s", "t = 0.75 s", "t = 1.25 s", "t = 1.75 s"]


def test_spectrogram_of_a_tone_peaks_at_its_frequency():
    rate = 16000
    tone = np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)
    times, freqs, db = plots.spectrogram_db(tone, rate)
    assert len(freqs) <= 128
    assert freqs[db.mean(axis=1).argmax()] == pytest.approx(1000, abs=2 * (freqs[1] - freqs[0]))
    assert times[0] >= 0 and times[-1] <= 1.0


def test_spectrogram_of_a_clip_shorter_than_one_window_is_one_column():
    times, freqs, db = plots.spectrogram_db(np.ones(200, np.float32), 16000)  # 12.5 ms, the window is 25 ms
    assert len(times) == 1 and db.shape == (len(freqs), 1)


def test_spectrogram_figure_draws_attention_on_a_second_axis_with_segment_bounds():
    tone = np.sin(np.arange(32000) / 5.0)
    curve = (np.linspace(0, 2, 100), np.linspace(0, 1, 100))
    fig = plots.spectrogram_figure(tone, 16000, attention=curve, segments=[(0.0, 1.0), (1.0, 2.0)])
    assert _types(fig) == ["heatmap", "scatter"]
    assert fig.data[1].yaxis == "y2"
    assert [shape.x0 for shape in fig.layout.shapes] == [1.0]
    edges = np.asarray(fig.data[0].x)
    assert len(edges) == np.asarray(fig.data[0].z).shape[1] + 1 and (edges[0], edges[-1]) == (0.0, 2.0)


def test_a_very_short_clip_has_its_spectrogram_over_the_whole_clip():
    fig = plots.spectrogram_figure(np.sin(np.arange(800) / 3.0), 16000)  # 50 ms: a few windows
    assert (fig.data[0].x[0], fig.data[0].x[-1]) == (0.0, 0.05)


def test_point_cloud_is_thinned_deterministically_and_coloured_by_choice():
    xyz = np.random.default_rng(0).normal(size=(10000, 3))
    values = np.arange(10000, dtype=float)
    by_value = plots.point_cloud_figure(xyz, values=values)
    again = plots.point_cloud_figure(xyz, values=values)
    assert len(by_value.data[0].x) == plots.MAX_PLOT_POINTS
    assert np.array_equal(by_value.data[0].marker.color, again.data[0].marker.color)
    by_rgb = plots.point_cloud_figure(xyz[:10], rgb=np.tile([1.0, 0.0, 0.0], (10, 1)))
    assert list(by_rgb.data[0].marker.color) == ["rgb(255,0,0)"] * 10
    by_height = plots.point_cloud_figure(xyz[:10])
    assert np.allclose(by_height.data[0].marker.color, xyz[:10, 2])


def test_matrix_keeps_repeated_tokens_as_separate_columns():
    fig = plots.matrix_figure(np.ones((3, 4)), ["a", "b", "a", "c"])
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "a", "c"]
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2, 3]


def test_token_nll_figure_has_one_bar_per_token_of_each_candidate():
    fig = plots.token_nll_figure([("original", ["a", "b"], [1.0, 2.0]), ("rewrite", ["c", "d", "e"], [3, 1, 2])])
    assert [len(t.y) for t in fig.data] == [2, 3]
    assert [a.text for a in fig.layout.annotations] == ["original", "rewrite"]


def test_readable_tokens_show_byte_level_spaces():
    assert plots.readable_tokens(["\u0120cat", "s", ""]) == [" cat", "s", "\u2423"]


def _record(passes=2, layers=3, queries=4, tokens=6, **extra):
    weights = np.random.default_rng(1).random((passes, layers, queries, tokens)).astype(np.float32)
    return ModalityAttention(weights=weights, **extra)


def test_select_picks_a_layer_and_a_query_or_the_average():
    record = _record()
    assert np.allclose(attention.select(record, -1), record.weights[:, 2].mean(axis=1))
    assert np.allclose(attention.select(record, 0, "query 3"), record.weights[:, 0, 3])
    assert attention.query_choices(record) == ["average", "query 0", "query 1", "query 2", "query 3"]
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        attention.select(record, 3)
    with pytest.raises(ValueError, match="query 9 does not exist"):
        attention.select(record, 0, "query 9")


def test_grid_reshape_is_row_major_and_checks_the_token_count():
    values = np.arange(12, dtype=float)[None]
    assert attention.as_grid(values, (3, 4))[0, 1, 0] == 4
    with pytest.raises(ValueError, match="do not fill a 3x5 grid"):
        attention.as_grid(values, (3, 5))


def test_attention_over_time_drops_segment_padding():
    values = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    times, weights = attention.over_time(values, [(0.0, 1.5), (1.5, 2.5)])
    assert np.allclose(weights, [0.2, 0.3, 0.5, 0.6, 0.4])
    assert np.allclose(times, [0.25, 0.75, 1.25, 1.75, 2.25])


def test_points_take_the_weight_of_their_nearest_group_centre():
    centres = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    points = np.array([[0.1, 0, 0], [0.9, 0, 0], [0.4, 0, 0]])
    assert np.allclose(attention.per_point(np.array([0.2, 0.8]), centres, points), [0.2, 0.8, 0.2])
    with pytest.raises(ValueError, match="3 weights for 2 point groups"):
        attention.per_point(np.ones(3), centres, points)


def test_meshes_go_to_the_mesh_viewer_and_point_clouds_to_the_scatter(tmp_path):
    mesh = preview_3d(str(EXAMPLES / "cone.glb"))
    assert mesh.mesh_path == str(EXAMPLES / "cone.glb") and mesh.figure is None
    cloud = preview_3d(str(EXAMPLES / "torus_points.ply"))
    assert cloud.mesh_path is None and cloud.figure.data[0].type == "scatter3d"
    assert "rgb" in cloud.figure.layout.title.text


def test_the_mesh_viewer_camera_stands_back_far_enough_to_leave_a_margin(tmp_path):
    import trimesh

    from demo.handlers import preview_points

    box = tmp_path / "box.stl"
    trimesh.creation.box(extents=(3.0, 4.0, 12.0)).export(str(box))  # bounding-box diagonal 13
    preview = preview_3d(str(box))
    assert preview.camera_radius == pytest.approx(1.5 * 13.0)
    viewer = preview_points(str(box))[0]
    assert viewer.camera_position == (45, 65, preview.camera_radius)


def test_a_mesh_the_viewer_draws_as_it_is_is_read_once(tmp_path, monkeypatch):
    """The camera distance comes from the loader's reading, not from a second parse of a mesh of up to 50 MB."""
    import trimesh

    box = tmp_path / "box.stl"
    trimesh.creation.box(extents=(3.0, 4.0, 12.0)).export(str(box))
    reads = []
    load = trimesh.load
    monkeypatch.setattr(trimesh, "load", lambda *args, **kwargs: reads.append(args[0]) or load(*args, **kwargs))
    assert preview_3d(str(box)).mesh_path == str(box)
    assert reads == [str(box)]


@pytest.mark.parametrize("suffix", [".off", ".obj"])
def test_mesh_formats_the_viewer_cannot_draw_are_converted_to_glb(tmp_path, suffix):
    """.obj too: the viewer draws an .obj without a material solid black."""
    import trimesh

    off = tmp_path / f"box{suffix}"
    trimesh.creation.box().export(str(off))
    converted = preview_3d(str(off)).mesh_path
    assert converted.endswith("box.glb") and trimesh.load(converted, force="mesh").faces.shape[0] == 12
    copy = tmp_path / "copy" / f"box{suffix}"
    copy.parent.mkdir()
    copy.write_bytes(off.read_bytes())
    assert preview_3d(str(copy)).mesh_path == converted, "the same mesh was converted again"


def test_a_corrupt_3d_file_raises_the_loaders_error(tmp_path):
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(MediaError, match="broken.ply"):
        preview_3d(str(broken))


def test_word_diff_marks_added_and_removed_words():
    assert word_diff("what is it", "what colour is it now") == [
        ("what ", None), ("colour ", "added"), ("is it ", None), ("now ", "added")]
    assert word_diff("a b", "a c") == [("a ", None), ("b ", "removed"), ("c ", "added")]


def _result(**extra) -> AskResult:
    return AskResult(answer="a cat", instruction_used="what is it", tokens_generated=8,
                     timings_s={"load": 9.0, "encode_image": 0.0, "qformer": 0.05, "first_token": 0.4, "total": 1.25,
                                "tokens_per_s": 9.5}, **extra)


def test_timings_line_names_each_step_and_the_speed_but_not_the_model_load():
    line = timings_line(_result())
    assert "encode image 0.00 s (cached)" in line and "total 1.25 s" in line
    assert "8 tokens at 9.5 tokens/s" in line and "load" not in line


def test_session_history_holds_only_answered_turns_and_messages_show_timings():
    session = ChatSession()
    first = session.start_turn("what is it", {"image": "/tmp/cat.jpg"})
    first.answer, first.result = "a cat", _result()
    session.start_turn("and now?", {})
    assert session.history() == [("what is it", "a cat")]
    messages = session.messages()
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "image: cat.jpg" in messages[0]["content"] and "tokens/s" in messages[1]["content"]
    assert session.pop_turn().question == "and now?" and session.last_answered() is first


def test_attention_status_tells_text_only_from_the_linear_baseline():
    from demo.attention_views import attention_status

    session = ChatSession()
    text_only = session.start_turn("hello", {})
    text_only.result = _result()
    linear = session.start_turn("what is it", {"image": "/tmp/cat.jpg"})
    linear.result = _result()  # media given, but no cross-attention came back
    assert "no media" in attention_status(text_only)
    assert "linear-projection baseline" in attention_status(linear)


def test_inspector_ranks_candidates_by_ias_and_diffs_the_final_instruction():
    candidates = [InstructionCandidate("what is it", 2.0, [2.0, 2.0], ["what", "is"], "original"),
                  InstructionCandidate("describe the object", 1.0, [1.0, 1.0], ["describe", "object"], "rewrite")]
    trace = OptimizerTrace(candidates, "Example prompt", "describe the object", {"ias": 0.1},
                           rejected={"How big is the car?": "changes what is asked"})
    session = ChatSession()
    turn = session.start_turn("what is it", {})
    turn.result = _result(optimizer=trace)
    view = inspector_view(turn)
    assert [(row[0], row[-1]) for row in view.candidates] == [
        ("rewrite", "\u2713"), ("original", ""), ("dropped: changes what is asked", "")]
    assert view.status.startswith("2 candidates scored, 1 rewrite dropped by the filters;")
    assert view.in_context_prompt == "Example prompt" and view.answer == "a cat"
    titles = [annotation.text for annotation in view.token_nll.layout.annotations]
    assert titles == ["1. rewrite, used: IAS 1.000, 'describe the object'", "2. original: IAS 2.000, 'what is it'"]
    assert "No in-context comparison" not in view.status
    assert ("describe the object ", "added") in view.diff
    assert "without the optimiser" in inspector_view(Turn("x", result=_result())).status


def test_a_long_instruction_used_is_marked_used_on_its_shortened_chart_title():
    long = "What is the colour of the small ball that lies to the left of the big red cube in this picture?"
    candidates = [InstructionCandidate(long, 1.0, [1.0], ["What"], "original")]
    turn = Turn(long, result=_result(optimizer=OptimizerTrace(candidates, "", long, {"total": 0.1})))
    [title] = [annotation.text for annotation in inspector_view(turn).token_nll.layout.annotations]
    assert title.startswith("1. original, used: IAS 1.000, 'What is the colour") and title.endswith("…'")


def test_inspector_says_when_stop_cut_the_optimiser_short():
    stopped = OptimizerTrace([], "", "what is it", {"rewrite": 0.2, "total": 0.2}, stopped=True)
    turn = Turn("what is it", result=_result(optimizer=stopped))
    view = inspector_view(turn)  # stopped while rewriting: nothing was scored, so there are no bars to draw
    status = view.status
    assert not view.candidates and not view.token_nll.data
    assert status.startswith("**The optimiser was stopped by Stop; its remaining steps were skipped.**")
    assert "0 candidates scored; the instruction used is the original" in status
    assert "No in-context comparison" not in status
    finished = OptimizerTrace([], "", "what is it", {"total": 0.2})
    status = inspector_view(Turn("what is it", result=_result(optimizer=finished))).status
    assert "stopped" not in status and "No in-context comparison ran: no rewrite survived the filters" in status


def test_attention_views_draw_every_modality_on_its_media_and_hide_the_rest():
    from demo.handlers import analysis, redraw_attention

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 3)).astype(np.float32)
    records = {
        "image": _record(passes=1, tokens=49, grid_hw=(7, 7)),
        "video": _record(passes=4, tokens=49, grid_hw=(7, 7)),
        "audio": _record(passes=2, tokens=50, segment_seconds=[(0.0, 1.0), (1.0, 2.0)]),
        "points": _record(passes=1, tokens=4, group_centres=centres,
                          points=rng.normal(size=(300, 3)).astype(np.float32)),
    }
    media = {"image": "cat.jpg", "video": "moving_circle.mp4", "audio": "beeps.wav", "points": "torus_points.ply"}
    session = ChatSession()
    turn = session.start_turn("what is it", {k: str(EXAMPLES / v) for k, v in media.items()})
    turn.result = _result(attention=records)

    layer, query, status, *views = analysis(session)[:8]
    assert (layer.maximum, layer.value, query.value) == (2, 2, "average")
    assert "image, audio, video, 3D object" in status
    shown = {name: view for name, view in zip(("image", "audio", "video", "points", "cmaa"), views)}
    assert not shown["cmaa"].visible and all(shown[m].visible for m in media)
    assert [t["type"] for t in _plot_traces(shown["video"])].count("heatmap") == 4
    assert [t["type"] for t in _plot_traces(shown["audio"])] == ["heatmap", "scatter"]

    _, *redrawn = redraw_attention(session, 0, "query 1")
    image_heatmap = _plot_traces(redrawn[0])[1]
    assert np.allclose(_typed_array(image_heatmap["z"]).ravel(), records["image"].weights[0, 0, 1])
    assert layer.interactive and query.interactive

    linear = session.start_turn("what is it", {"image": str(EXAMPLES / "cat.jpg")})
    linear.result = _result()  # the linear baseline: no cross-attention, so no layer or query to pick
    layer, query = analysis(session)[:2]
    assert not layer.interactive and (query.interactive, query.value) == (False, "average")


def _plot_traces(update) -> list[dict]:
    """The traces a `gr.Plot` update carries (Gradio stores the figure as JSON)."""
    return json.loads(update.value["plot"])["data"]


def _typed_array(encoded: dict) -> np.ndarray:
    """Plotly's JSON form of a NumPy array: base64 bytes, a dtype code and a shape."""
    values = np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=np.dtype(encoded["dtype"]))
    shape = encoded.get("shape")
    return values.reshape([int(n) for n in str(shape).split(",")]) if shape else values


def test_the_attached_line_lists_every_file_the_next_question_carries():
    from demo.handlers import attached_summary

    assert attached_summary("/tmp/up/cat.jpg", None, None, "/tmp/up/cone.glb") == "**Attached:** image: cat.jpg, 3D: cone.glb"
    assert attached_summary(None, None, None, None).startswith("No files attached")
