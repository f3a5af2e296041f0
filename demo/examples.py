"""The examples gallery: every modality alone and the cross-modal pairs (image + 3D, audio + video), one click each.

The media files are made by `demo/make_examples.py` into assets/examples. The "Tiny world" ones are fresh samples of
the world the offline preset was trained on, so its answers there are meaningful; the others come from outside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"


@dataclass(frozen=True)
class Example:
    label: str
    question: str
    image: Optional[str] = None
    audio: Optional[str] = None
    video: Optional[str] = None
    points: Optional[str] = None

    def row(self) -> list[Optional[str]]:
        """Values for (question, image, audio, video, 3D), file names resolved inside assets/examples."""
        files = [self.image, self.audio, self.video, self.points]
        return [self.question] + [str(EXAMPLES_DIR / f) if f else None for f in files]


EXAMPLES = [
    Example("Tiny world: picture", "What color is the car?", image="world_picture.jpg"),
    Example("Tiny world: sound", "What sound is this?", audio="world_siren.wav"),
    Example("Tiny world: spoken word", "What word is spoken?", audio="world_spoken.wav"),
    Example("Tiny world: video", "Which direction does the square move?", video="world_video.mp4"),
    Example("Tiny world: 3D scene", "What object is on the left?", points="world_scene.npy"),
    Example("Tiny world: picture + 3D", "Which one has more objects?", image="world_picture.jpg",
            points="world_scene.npy"),
    Example("Image: a photo", "What animal is in the picture?", image="cat.jpg"),
    Example("Image: shapes", "What shapes are in the image and what colour are they?", image="shapes.png"),
    Example("Audio: beeps", "How many beeps do you hear?", audio="beeps.wav"),
    Example("Video: moving circle", "Which way does the circle move?", video="moving_circle.mp4"),
    Example("3D: mesh", "What object is this?", points="cone.glb"),
    Example("3D: point cloud", "What shape is this point cloud?", points="torus_points.ply"),
    Example("Image + 3D", "Which one has more objects, the image or the 3D object?", image="shapes.png",
            points="cone.glb"),
    Example("Audio + video", "Which one is faster, the audio or the video?", audio="beeps.wav",
            video="moving_circle.mp4"),
]


def build_examples(inputs: list[gr.components.Component]) -> gr.Examples:
    """The gallery; `inputs` are the question box and the image, audio, video and 3D inputs, in that order."""
    return gr.Examples(examples=[e.row() for e in EXAMPLES], inputs=inputs, example_labels=[e.label for e in EXAMPLES],
                       label="Examples (click one to load it)", examples_per_page=len(EXAMPLES), cache_examples=False)
