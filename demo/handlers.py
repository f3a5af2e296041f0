"""Event handlers: thin glue between the Gradio components, the session state and the shared pipeline.

A bad upload never reaches the user as a traceback: `core.media.MediaError` (and invalid settings) become a
`gr.Warning` for previews or a `gr.Error` for a turn, whose text is the loader's one-line message.
"""
from __future__ import annotations

import logging
from typing import Iterator, Optional

import gradio as gr
import numpy as np

from core import media
from core.schema import AskRequest
from demo import attention, plots
from demo.attention_views import AUDIO_SAMPLE_RATE, VIEWS, attention_figures, attention_status
from demo.engine import PipelineHost
from demo.inspector import inspector_view
from demo.session import ChatSession, Turn, attached_names
from demo.settings import read_settings
from demo.video_player import playable_video
from demo.viewer3d import preview_3d

log = logging.getLogger(__name__)

HIDDEN_CLASS = "xm-hidden"
"""Elements with this class are not displayed (see `demo.layout.CSS`)."""
MEDIA_ORDER = ("image", "audio", "video", "points")
"""The order the media components are passed to the chat handlers."""


def preview_image(path: Optional[str]):
    """(preview picture, upload value): a refused file is cleared from the upload with a warning."""
    if not path:
        return None, gr.skip()
    try:
        return np.asarray(media.load_image(path)), gr.skip()
    except media.MediaError as e:
        gr.Warning(str(e))
        return None, None


def preview_audio(path: Optional[str]):
    """(spectrogram figure, audio value)."""
    if not path:
        return plots.placeholder_figure("Upload or record audio to see its spectrogram."), gr.skip()
    try:
        waveform = media.load_audio(path, sample_rate=AUDIO_SAMPLE_RATE)
    except media.MediaError as e:
        gr.Warning(str(e))
        return plots.placeholder_figure("The audio was refused."), None
    return plots.spectrogram_figure(waveform, AUDIO_SAMPLE_RATE, title="spectrogram"), gr.skip()


def preview_video(path: Optional[str]):
    """(player value, upload value): a refused file is cleared from the upload with a warning. One the browser
    cannot play (.avi, .mov, an animated .gif) is shown as an mp4 copy; if even that fails, the model still gets it."""
    if not path:
        return None, gr.skip()
    try:
        clip = media.load_video(path, num_frames=1)
    except media.MediaError as e:
        gr.Warning(str(e))
        return None, None
    try:
        return playable_video(path, clip.codec), gr.skip()
    except media.MediaError as e:
        gr.Warning(f"The player cannot show this video ({e}); questions about it are still answered.")
        return None, gr.skip()


def preview_points(path: Optional[str]):
    """(mesh viewer, point-cloud plot, upload value): meshes in `gr.Model3D`, point clouds as a plotly scatter.

    The mesh viewer is hidden with a CSS class, not `visible=False`: a `gr.Model3D` that starts invisible inside
    a tab never creates its canvas when shown (Gradio 6.31).
    """
    hidden_mesh = gr.Model3D(value=None, elem_classes=[HIDDEN_CLASS])
    if not path:
        return hidden_mesh, gr.Plot(value=None, visible=False), gr.skip()
    try:
        preview = preview_3d(path)
    except media.MediaError as e:
        gr.Warning(str(e))
        return hidden_mesh, gr.Plot(value=None, visible=False), None
    if preview.mesh_path is not None:
        return (gr.Model3D(value=preview.mesh_path, camera_position=preview.camera_position(), elem_classes=[]),
                gr.Plot(value=None, visible=False), gr.skip())
    return hidden_mesh, gr.Plot(value=preview.figure, visible=True), gr.skip()


def attached_summary(image: Optional[str], audio: Optional[str], video: Optional[str],
                     points: Optional[str]) -> str:
    """The line above the input tabs: every file the next question carries, as only one tab shows at a time."""
    names = attached_names({"image": image, "audio": audio, "video": video, "points": points})
    return f"**Attached:** {names}" if names else "No files attached: questions go to the language model alone."


def reveal_input_tab(tab_id: str):
    """A handler that brings an input's tab to the front when it gets a file (an example click fills it unseen)."""

    def reveal(path: Optional[str]):
        return gr.Tabs(selected=tab_id) if path else gr.skip()

    return reveal


class ChatHandlers:
    """The handlers that need the shared pipelines."""

    def __init__(self, host: PipelineHost) -> None:
        self.host = host

    def respond(self, session: ChatSession, question: str, image: Optional[str], audio: Optional[str],
                video: Optional[str], points: Optional[str], *settings_values) -> Iterator[tuple]:
        """Stream one answer into the chat: yields (chat messages, question box)."""
        yield from self._answer(session, session.begin_answer(), question, image, audio, video, points,
                                *settings_values)

    def _answer(self, session: ChatSession, stop, question: str, image: Optional[str], audio: Optional[str],
                video: Optional[str], points: Optional[str], *settings_values) -> Iterator[tuple]:
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question first.")
            yield gr.skip(), gr.skip()
            return
        chosen = _settings_or_error(settings_values)
        files = dict(zip(MEDIA_ORDER, (image, audio, video, points)))
        given = {kind: path for kind, path in files.items() if path}
        request = AskRequest(question=question, history=session.history(), settings=chosen.generation,
                             optimize=chosen.optimize, qformer_prompt=chosen.qformer_prompt, **given)
        turn = session.start_turn(question, given)
        yield session.messages(), ""
        try:
            pipeline = self.host.get(chosen.preset)
            for event in pipeline.stream(request, stop=stop):
                if event.delta:
                    turn.answer += event.delta
                    yield session.messages(), gr.skip()
                if event.result is not None:
                    turn.result = event.result
                    turn.answer = event.result.answer
                    turn.stopped = stop.is_set()
                    dropped = event.result.history_turns_dropped
                    if dropped:
                        left_out = "its oldest turn was" if dropped == 1 else f"its {dropped} oldest turns were"
                        gr.Info(f"The chat no longer fits in the model's context: {left_out} left out of this "
                                "answer.")
        except (media.MediaError, ValueError) as e:
            session.discard(turn)
            yield session.messages(), question
            raise gr.Error(str(e)) from e
        except Exception as e:
            log.exception("answering %r failed", question)
            session.discard(turn)
            yield session.messages(), question
            raise gr.Error(f"Answering failed ({type(e).__name__}: {e}); the app is still running.") from e
        yield session.messages(), gr.skip()

    def retry(self, session: ChatSession, image, audio, video, points, *settings_values) -> Iterator[tuple]:
        """Ask the last question again (with the media and settings as they are now)."""
        stop = session.begin_answer()  # first: every sent question starts one answer, in order
        if not session.turns:
            gr.Warning("There is no question to retry yet.")
            yield gr.skip(), gr.skip()
            return
        _settings_or_error(settings_values)  # refused settings keep the turn that was to be retried
        turn = session.pop_turn()
        try:
            yield from self._answer(session, stop, turn.question, image, audio, video, points, *settings_values)
        except gr.Error:
            session.turns.append(turn)  # the new answer was refused or failed: the old one stays
            yield session.messages(), gr.skip()
            raise


def _settings_or_error(settings_values: tuple):
    try:
        return read_settings(*settings_values)
    except ValueError as e:
        raise gr.Error(f"Invalid setting: {e}") from e


def sent(session: ChatSession) -> None:
    """Runs outside the queue the moment a question is sent, before its answer waits for the model."""
    session.question_sent()


def stop(session: ChatSession) -> None:
    """Ask the running answer to stop after its current token (the partial answer stays), and the questions still
    waiting in the queue not to start."""
    session.stop_all()


def undo(session: ChatSession):
    """Drop the last turn and put its question back in the box: (chat messages, question box). An answer still
    running for that turn is stopped, so it does not hold the shared model for nothing."""
    if session.unanswered():
        session.stop_running()
    turn = session.pop_turn()
    return session.messages(), (turn.question if turn else gr.skip())


def clear(session: ChatSession):
    """Forget the conversation (the uploads stay) and stop an answer still running: (chat messages, question box)."""
    if session.unanswered():
        session.stop_running()
    session.clear()
    return [], ""


def analysis(session: ChatSession) -> list:
    """Attention controls and figures plus the inspector's content for the newest answered turn.

    The controls reset to the last layer and the query average (a new answer, or an undo, changes the turn shown).
    Returns, in order: layer, query, the attention status and one plot per view in `VIEWS` order, then the
    inspector's status, candidates, NLL figure, in-context prompt, diff and answer.
    """
    turn = session.last_answered()
    records = list(turn.result.attention.values()) if turn is not None and turn.result is not None else []
    if records:
        layers = attention.layer_count(records[0])
        chosen_layer, chosen_query = layers - 1, attention.AVERAGE
        layer_control = gr.Slider(minimum=0, maximum=layers - 1, value=chosen_layer, interactive=True)
        query_control = gr.Dropdown(choices=attention.query_choices(records[0]), value=chosen_query,
                                    interactive=True)
    else:
        chosen_layer, chosen_query = -1, attention.AVERAGE  # nothing to choose from: text only, or linear baseline
        layer_control = gr.Slider(interactive=False)
        query_control = gr.Dropdown(choices=[attention.AVERAGE], value=attention.AVERAGE, interactive=False)
    view = inspector_view(turn)
    return [layer_control, query_control, *_views(turn, chosen_layer, chosen_query), view.status,
            view.candidates, view.token_nll, view.in_context_prompt, view.diff, view.answer]


def redraw_attention(session: ChatSession, layer: float, query: str) -> list:
    """The attention status and figures for another layer or query of the same answer."""
    return _views(session.last_answered(), int(layer), query)


def _views(turn: Optional[Turn], layer: int, query: str) -> list:
    """The status line, then one plot update per view in `VIEWS` order: views the turn lacks are hidden, and
    media that can no longer be read (a deleted upload) are reported instead of drawn."""
    try:
        figures = attention_figures(turn, layer, query)
        status = attention_status(turn)
    except media.MediaError as e:
        figures, status = {}, f"Cannot draw the attention: {e}"
    return [status, *(gr.Plot(value=figures.get(v), visible=v in figures) for v in VIEWS)]
