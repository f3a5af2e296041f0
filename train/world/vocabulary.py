"""The fixed vocabulary of the tiny world (DESIGN section 5).

Every generator, caption, template question and DisCRn question draws its words from here, so that questions can
be asked "from outside" and answers checked against the properties record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Shape:
    """One object kind. `key` is the canonical name; 2D drawings and 3D point clouds may name it differently."""

    key: str
    name_2d: str
    name_3d: str
    composite: bool
    setting: Optional[str] = None
    """Where such a thing is usually found ("outdoors" / "indoors"); None for plain geometric shapes."""

    def name(self, modality: str) -> str:
        return self.name_3d if modality == "points" else self.name_2d

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name_2d, self.name_3d)))


SHAPES: dict[str, Shape] = {s.key: s for s in (
    Shape("cube", "square", "cube", False),
    Shape("sphere", "circle", "sphere", False),
    Shape("cone", "triangle", "cone", False),
    Shape("cylinder", "cylinder", "cylinder", False),
    Shape("torus", "ring", "torus", False),
    Shape("tree", "tree", "tree", True, "outdoors"),
    Shape("house", "house", "house", True, "outdoors"),
    Shape("table", "table", "table", True, "indoors"),
    Shape("chair", "chair", "chair", True, "indoors"),
    Shape("snowman", "snowman", "snowman", True, "outdoors"),
    Shape("lamp", "lamp", "lamp", True, "indoors"),
    Shape("car", "car", "car", True, "outdoors"),
)}

PLURALS = {"torus": "tori", "snowman": "snowmen"}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 215),
    "yellow": (240, 215, 40),
    "purple": (140, 60, 190),
    "orange": (245, 135, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}

SIZES = ("small", "large")
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
MAX_IMAGE_OBJECTS = 4
MAX_POINTS_OBJECTS = 3

IMAGE_POSITIONS = ("left", "right", "top", "bottom", "center")
POINTS_POSITIONS = ("left", "center", "right")
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
                    "center": "in the center"}

DIRECTIONS = ("left", "right", "up", "down")
MOTIONS = DIRECTIONS + ("grow", "shrink", "change colour")
SPEEDS = ("slow", "fast")

SOUND_KINDS = ("beep", "chirp", "siren", "hiss", "drum", "bell", "chord", "speech")
SOUND_NOUNS = {"beep": ("beep", "beeps"), "chirp": ("chirp", "chirps"), "siren": ("siren wail", "siren wails"),
               "hiss": ("hiss", "hisses"), "drum": ("drum hit", "drum hits"), "bell": ("bell chime", "bell chimes"),
               "chord": ("chord", "chords"), "speech": ("word", "words")}
SOUND_SETTINGS = {"siren": "outdoors", "chirp": "outdoors", "beep": "indoors", "chord": "indoors"}
"""Common-sense places of sounds (a siren in the street, a bird's chirp; an appliance's beep, a piano chord).
Kinds missing here have no clear place and are never used in "where" questions."""
PITCHES = ("low", "high")
TEMPOS = ("slow", "fast")
MAX_EVENTS = 4
SPOKEN_WORDS = ("hello", "yes", "no", "stop", "go", "apple", "water", "music", "thanks", "sunny")


def plural(word: str) -> str:
    """English plural of a vocabulary noun."""
    return PLURALS.get(word, word + "s")
