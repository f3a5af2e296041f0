"""Template instruction data: questions per property and modality with one- or two-word answers, and captioning
prompts. This is the paper's first way of turning captions into instruction data; the LLM round trip is the second
(`train/qa_gen.py`).

Questions are read from the properties record, never parsed from the caption, so every answer is right by
construction. Each pair names the property it tests (for per-property accuracy) and the answers that also count as
right (synonyms, digits), for lenient scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from train.world.vocabulary import COUNT_WORDS, DIRECTIONS, POSITION_PHRASES, SHAPES, plural

CAPTION_PROMPTS = {
    "image": ("Describe the image briefly.", "Write a short caption for the image.", "What does the image show?"),
    "video": ("Describe the video briefly.", "Write a short caption for the video.", "What happens in the video?"),
    "audio": ("Describe the audio briefly.", "Write a short caption for the sound.", "What do you hear?"),
    "points": ("Describe the 3D object briefly.", "Write a short caption for the 3D scene.",
               "What does the 3D model show?"),
}
SOUND_ANSWERS = {"beep": ("beep", "tone", "beeping"), "chirp": ("chirp", "sweep", "chirping"),
                 "siren": ("siren", "alarm"), "hiss": ("hiss", "noise", "hissing"), "drum": ("drum", "thump", "drums"),
                 "bell": ("bell", "chime", "bells"), "chord": ("chord", "piano", "chords"),
                 "speech": ("speech", "voice", "spoken words", "talking", "words")}
MOTION_ANSWERS = {"left": ("moves left", "left"), "right": ("moves right", "right"), "up": ("moves up", "up"),
                  "down": ("moves down", "down"), "grow": ("grows", "grow", "gets bigger"),
                  "shrink": ("shrinks", "shrink", "gets smaller"),
                  "change colour": ("changes color", "changes colour", "change color", "change colour")}
WORD_SYNONYMS = {"large": ("big",), "small": ("little", "tiny"), "fast": ("quick", "quickly"), "slow": ("slowly",),
                 "center": ("centre", "middle"), "up": ("upward", "upwards"), "down": ("downward", "downwards"),
                 "left": ("to the left", "leftward"), "right": ("to the right", "rightward"),
                 "rising": ("rises", "up"), "falling": ("falls", "down")}


@dataclass(frozen=True)
class TemplateQA:
    question: str
    answer: str
    property: str
    """What the question tests: colour, object, count, position, size, direction, motion, speed, sound, pitch,
    events, tempo, word or sweep."""
    accepted: tuple[str, ...]
    """Answers that count as right, `answer` first."""


class _Asker:
    """Builds pairs, choosing among paraphrases with the rng (or always the first one without it)."""

    def __init__(self, rng: Optional[np.random.Generator]) -> None:
        self.rng = rng
        self.pairs: list[TemplateQA] = []

    def ask(self, prop: str, phrasings: tuple[str, ...], answer: str, *synonyms: str) -> None:
        question = phrasings[int(self.rng.integers(len(phrasings)))] if self.rng is not None else phrasings[0]
        accepted = dict.fromkeys((answer, *synonyms, *WORD_SYNONYMS.get(answer, ())))
        self.pairs.append(TemplateQA(question, answer, prop, tuple(accepted)))


def _count_answer(count: int) -> tuple[str, str]:
    return COUNT_WORDS[count], str(count)


def _shape_answers(shape: str, name: str) -> tuple[str, ...]:
    return (name, *SHAPES[shape].names, plural(name))


def _image_pairs(asker: _Asker, properties: dict) -> None:
    groups = properties["groups"]
    asker.ask("count", ("How many objects are there?", "Count the objects in the image.",
                        "How many things are in the picture?"), *_count_answer(properties["count"]))
    for g in groups:
        one = g["count"] == 1
        the = f"the {g['name']}" if one else f"the {plural(g['name'])}"
        is_, does = ("is", "does") if one else ("are", "do")
        asker.ask("colour", (f"What color {is_} {the}?", f"What colour {is_} {the}?",
                             f"Which color {does} {the} have?"), g["colour"])
        where = POSITION_PHRASES[g["position"]]
        if len(groups) == 1:
            asker.ask("object", ("What object is in the image?", "What is shown in the image?",
                                 "Name the object in the picture."), *_shape_answers(g["shape"], g["name"]))
        else:
            asker.ask("object", (f"What object is {where}?", f"What is {where}?",
                                 f"Name the object {where}."), *_shape_answers(g["shape"], g["name"]))
            asker.ask("count", (f"How many {plural(g['name'])} are there?",
                                f"How many {plural(g['name'])} are in the image?"), *_count_answer(g["count"]))
        asker.ask("position", (f"Where {is_} {the}?", f"In which part of the image {is_} {the}?"), g["position"], where)
        asker.ask("size", (f"{is_.capitalize()} {the} small or large?", f"How big {is_} {the}?"), g["size"])


def _video_pairs(asker: _Asker, properties: dict) -> None:
    mover = next(o for o in properties["objects"] if o["role"] == "moving")
    motion, name = properties["motion"], mover["name"]
    asker.ask("count", ("How many objects are there?", "How many objects are in the video?"),
              *_count_answer(properties["count"]))
    asker.ask("object", ("What object is moving?", "Which object changes in the video?"),
              *_shape_answers(mover["shape"], name))
    if motion in DIRECTIONS:
        asker.ask("direction", (f"Which direction does the {name} move?", f"Where does the {name} move?",
                                f"In which direction is the {name} moving?"), motion)
    asker.ask("motion", (f"What does the {name} do?", f"What happens to the {name}?"), *MOTION_ANSWERS[motion])
    verb = {"grow": "grow", "shrink": "shrink", "change colour": "change color"}.get(motion, "move")
    asker.ask("speed", (f"Does the {name} {verb} fast or slowly?", f"How fast does the {name} {verb}?"),
              properties["speed"])
    if motion == "change colour":
        asker.ask("colour", (f"What color does the {name} turn?", f"What color does the {name} become?"),
                  mover["colour_end"])
        asker.ask("colour", (f"What color is the {name} at the start?",), mover["colour"])
    else:
        asker.ask("colour", (f"What color is the {name}?", f"What colour is the {name}?"), mover["colour"])
    for still in (o for o in properties["objects"] if o["role"] == "still"):
        asker.ask("object", ("Which object stays still?", "What object does not move?"),
                  *_shape_answers(still["shape"], still["name"]))
        asker.ask("colour", (f"What color is the {still['name']}?",), still["colour"])


def _audio_pairs(asker: _Asker, properties: dict) -> None:
    kind = properties["kind"]
    asker.ask("sound", ("What sound is this?", "What kind of sound do you hear?", "Which sound is played?"),
              *SOUND_ANSWERS[kind])
    subject = "voice" if kind == "speech" else "sound"
    asker.ask("pitch", (f"Is the {subject} high or low pitched?", f"Is the pitch of the {subject} high or low?"),
              properties["pitch"])
    asker.ask("events", ("How many times does the sound occur?", "How many sounds are there?",
                         "How many times do you hear it?"), *_count_answer(properties["events"]))
    if properties["tempo"]:
        asker.ask("tempo", ("Is the rhythm fast or slow?", "Do the sounds follow each other fast or slowly?"),
                  properties["tempo"])
    if kind == "speech":
        asker.ask("word", ("What word is spoken?", "What does the voice say?"), properties["word"])
    if properties["sweep"]:
        asker.ask("sweep", ("Does the chirp rise or fall?", "Is the chirp rising or falling?"), properties["sweep"])


def _points_pairs(asker: _Asker, properties: dict) -> None:
    """Sizes are asked only in scenes that mix them: loaders rescale every cloud into the unit sphere (as ULIP and
    LAVIS do), which leaves relative sizes visible and erases absolute ones."""
    objects = properties["objects"]
    mixed_sizes = len({o["size"] for o in objects}) > 1
    asker.ask("count", ("How many objects are there?", "How many objects are in the 3D scene?"),
              *_count_answer(properties["count"]))
    for o in objects:
        the = f"the {o['name']}"
        if len(objects) == 1:
            asker.ask("object", ("What object is this?", "What is the 3D object?", "Name the object in the 3D scene."),
                      *_shape_answers(o["shape"], o["name"]))
        else:
            where = POSITION_PHRASES[o["position"]]
            asker.ask("object", (f"What object is {where}?", f"What is {where}?"),
                      *_shape_answers(o["shape"], o["name"]))
            asker.ask("position", (f"Where is {the}?", f"On which side is {the}?"), o["position"], where)
        asker.ask("colour", (f"What color is {the}?", f"What colour is {the}?"), o["colour"])
        if mixed_sizes:
            asker.ask("size", (f"Is {the} small or large?", f"How big is {the}?"), o["size"])


PAIR_MAKERS = {"image": _image_pairs, "video": _video_pairs, "audio": _audio_pairs, "points": _points_pairs}


def template_qa(modality: str, properties: dict, rng: Optional[np.random.Generator] = None) -> list[TemplateQA]:
    """Every template question the record can answer unambiguously; the rng picks the phrasings."""
    if modality not in PAIR_MAKERS:
        raise ValueError(f"no templates for modality {modality!r}; expected one of {list(PAIR_MAKERS)}")
    asker = _Asker(rng)
    PAIR_MAKERS[modality](asker, properties)
    return asker.pairs


def caption_prompt(modality: str, rng: Optional[np.random.Generator] = None) -> str:
    """An instruction asking for a caption ("Describe the image briefly.")."""
    prompts = CAPTION_PROMPTS[modality]
    return prompts[int(rng.integers(len(prompts)))] if rng is not None else prompts[0]
