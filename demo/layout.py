"""The Blocks layout and its wiring: inputs with previews and the chat, then the Attention and Instruction tabs.

Model events (answers and the `ask` API) share one concurrency group so the queue hands the model to one request
at a time; everything per user (the chat, the last answer) lives in a `gr.State`.
"""
from __future__ import annotations

import gradio as gr

from core.media import KIND_EXTENSIONS
from demo import handlers
from demo.api import build_api_inputs, make_ask_endpoint
from demo.attention import AVERAGE
from demo.attention_views import NAMES, VIEWS
from demo.engine import PipelineHost
from demo.examples import build_examples
from demo.inspector import CANDIDATE_COLUMNS, DIFF_COLOURS
from demo.session import ChatSession
from demo.settings import build_settings
from demo.viewer3d import MESH_CAMERA_ANGLES

MODEL_QUEUE = "model"
CSS = f".{handlers.HIDDEN_CLASS} {{display: none !important;}}"
"""Pass to `launch(css=...)`: Gradio 6 takes page styles there."""
INTRO = """# X-Modal Instruct
Ask about any mix of an **image**, **audio**, a **video** and a **3D object** (or none). Each input reaches a frozen
language model through its own instruction-aware Q-Former (X-InstructBLIP); the optimiser can rewrite your question
first (VisLingInstruct). The **Attention** and **Instruction inspector** tabs show why the last answer came out."""


def build_demo(host: PipelineHost, presets: list[str], default_preset: str) -> gr.Blocks:
    chat = handlers.ChatHandlers(host)
    with gr.Blocks(title="X-Modal Instruct") as demo:
        session = gr.State(ChatSession())
        gr.Markdown(INTRO)
        with gr.Tab("Chat", id="chat"):
            with gr.Row():
                with gr.Column(scale=2, min_width=340):
                    attached = gr.Markdown(handlers.attached_summary(None, None, None, None), elem_id="attached")
                    with gr.Tabs(elem_id="inputs") as input_tabs:
                        with gr.Tab("Image", id="input-image"):
                            image = gr.File(label="Image", file_types=list(KIND_EXTENSIONS["image"]),
                                            type="filepath", elem_id="image-upload")
                            image_preview = gr.Image(label="Image preview", interactive=False, height=260,
                                                     elem_id="image-preview")
                        with gr.Tab("Audio", id="input-audio"):
                            audio = gr.Audio(label="Audio (upload or record)", sources=["upload", "microphone"],
                                             type="filepath", format=None, elem_id="audio-input")
                            spectrogram = gr.Plot(label="Spectrogram", elem_id="spectrogram")
                        with gr.Tab("Video", id="input-video"):
                            # a file upload, not gr.Video's: that one only takes video/* types, so no .gif
                            video = gr.File(label="Video", file_types=list(KIND_EXTENSIONS["video"]),
                                            type="filepath", elem_id="video-upload")
                            video_preview = gr.Video(label="Video preview", interactive=False, format=None,
                                                     height=300, elem_id="video-preview")
                        with gr.Tab("3D", id="input-3d"):
                            points = gr.File(label="3D object (point cloud or mesh)", type="filepath",
                                             file_types=list(KIND_EXTENSIONS["points"]), elem_id="points-upload")
                    # Outside the tabs: a Model3D first drawn in an unselected tab never creates its canvas.
                    mesh_viewer = gr.Model3D(label="3D preview (mesh)", height=360, elem_id="mesh-viewer",
                                             camera_position=(*MESH_CAMERA_ANGLES, None),
                                             elem_classes=[handlers.HIDDEN_CLASS])
                    cloud_viewer = gr.Plot(label="3D preview (point cloud)", visible=False,
                                           elem_id="points-viewer")
                with gr.Column(scale=3, min_width=420):
                    chatbot = gr.Chatbot(label="Chat", height=460, elem_id="chatbot", buttons=["copy"],
                                         feedback_options=None)
                    question = gr.Textbox(label="Question", placeholder="Ask about the inputs (or just chat)",
                                          lines=1, elem_id="question")
                    with gr.Row():
                        send = gr.Button("Send", variant="primary", elem_id="send")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
                        retry = gr.Button("Retry", elem_id="retry")
                        undo = gr.Button("Undo", elem_id="undo")
                        clear = gr.Button("Clear", elem_id="clear")
                    with gr.Accordion("Settings", open=False, elem_id="settings"):
                        settings = build_settings(presets, default_preset)
            build_examples([question, image, audio, video, points])
        with gr.Tab("Attention", id="attention", elem_id="tab-attention"):
            gr.Markdown("Where each modality's Q-Former looked (cross-attention, averaged over heads) for the last "
                        "answer. Hover for values.")
            with gr.Row():
                layer = gr.Slider(0, 1, value=1, step=1, label="Q-Former cross-attention layer", elem_id="layer",
                                  interactive=False)  # made interactive by the first answer with attention
                query = gr.Dropdown([AVERAGE], value=AVERAGE, label="Query", elem_id="query", interactive=False)
            attention_status = gr.Markdown(elem_id="attention-status")
            attention_plots = {view: gr.Plot(label=NAMES[view], visible=False, elem_id=f"attention-{view}")
                               for view in VIEWS}
        with gr.Tab("Instruction inspector", id="inspector", elem_id="tab-inspector"):
            inspector_status = gr.Markdown("Turn on **Optimise the instruction** in Settings and ask a question.",
                                           elem_id="inspector-status")
            candidates = gr.Dataframe(headers=CANDIDATE_COLUMNS, label="Candidates (best first)",
                                      interactive=False, wrap=True, elem_id="candidates")
            token_nll = gr.Plot(label="Per-token NLL (IAS is their mean)", elem_id="token-nll")
            in_context = gr.Textbox(label="In-context comparison prompt", lines=6, interactive=False,
                                    elem_id="in-context-prompt")
            diff = gr.HighlightedText(label="Final instruction (diff against the original)", combine_adjacent=True,
                                      color_map=DIFF_COLOURS, elem_id="instruction-diff")
            final_answer = gr.Textbox(label="Answer with the final instruction", interactive=False,
                                      elem_id="optimized-answer")
        api_inputs = build_api_inputs(presets, default_preset)

        media_inputs = [image, audio, video, points]
        attention_outputs = [attention_status, *attention_plots.values()]
        analysis_outputs = [layer, query, *attention_outputs, inspector_status, candidates, token_nll,
                            in_context, diff, final_answer]
        image.change(handlers.preview_image, image, [image_preview, image], api_visibility="private")
        audio.change(handlers.preview_audio, audio, [spectrogram, audio], api_visibility="private")
        video.change(handlers.preview_video, video, [video_preview, video], api_visibility="private")
        points.change(handlers.preview_points, points, [mesh_viewer, cloud_viewer, points], api_visibility="private")

        for component, tab_id in zip(media_inputs, ("input-image", "input-audio", "input-video", "input-3d")):
            component.change(handlers.reveal_input_tab(tab_id), component, input_tabs, api_visibility="private")
            component.change(handlers.attached_summary, media_inputs, attached, api_visibility="private")

        model_events = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=1)
        # "multiple" on every step of a chain: a question sent while another answer streams waits in the queue
        # ("once", the default, dropped it unseen, and one step of a chain left out is enough to drop it)
        queued = dict(trigger_mode="multiple", api_visibility="private")
        unqueued = dict(queued, queue=False)
        for trigger in (question.submit, send.click):
            trigger(handlers.sent, session, None, **unqueued).then(
                chat.respond, [session, question, *media_inputs, *settings.inputs()], [chatbot, question],
                **queued, **model_events).then(handlers.analysis, session, analysis_outputs, **queued)
        retry.click(handlers.sent, session, None, **unqueued).then(
            chat.retry, [session, *media_inputs, *settings.inputs()], [chatbot, question],
            **queued, **model_events).then(handlers.analysis, session, analysis_outputs, **queued)
        stop.click(handlers.stop, session, None, **unqueued)
        undo.click(handlers.undo, session, [chatbot, question], api_visibility="private").then(
            handlers.analysis, session, analysis_outputs, api_visibility="private")
        # the chat's own bin icon clears the conversation too, not only what the chat shows
        for clearing in (clear.click, chatbot.clear):
            clearing(handlers.clear, session, [chatbot, question], api_visibility="private").then(
                handlers.analysis, session, analysis_outputs, api_visibility="private")
        for control in (layer.input, query.input):  # a slider's input: dragged, or a number typed in its box
            control(handlers.redraw_attention, [session, layer, query], attention_outputs, trigger_mode="always_last",
                    api_visibility="private")

        ask_button = gr.Button(visible=False)
        ask_button.click(make_ask_endpoint(host, presets, default_preset), api_inputs, gr.JSON(visible=False),
                         api_name="ask", **model_events)
    return demo

