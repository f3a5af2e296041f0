"""DisCRn in the tiny world: discriminative cross-modal questions over pairs of inputs, answered "first" or "second".

Three parts, each usable alone:
- the pair generator: 3D-image and audio-video pairs from the world's test split, questions asked only when the
  properties records make the answer unambiguous, labels balanced per question type;
- a reader for the reference's released DisCRn json files (LAVIS `objaverse.json`, `audiocaps.json`), unchanged;
- the answer metric of DESIGN section 6: normalise, then correct iff a synonym of the right input appears as a
  token and no synonym of the other one does.

Inputs are ordered as the LLM sees them (core.schema.MODALITIES: audio, video, points, image), so "first" means the
input whose tokens come first.

    python -m train.discrn --world data/world --out data/discrn [--split test] [--pairs 1000] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from train.cli_types import positive_int
from train.world.dataset import load_split
from train.world.records import SPLITS, SampleRecord
from train.world.vocabulary import COLOURS, SHAPES, SOUND_SETTINGS

PROMPT_PREFIX = ("You are given two inputs. Select exactly one of the two by reference to its relative position "
                 "(first or second, left or right) that best answers the question.")
PAIR_KINDS = (("points", "image"), ("audio", "video"))
"""Modalities of the first and second input of each pair kind, in LLM input order."""


# ----------------------------------------------------------------------------------------------- facts of a sample

def object_count(modality: str, properties: dict) -> Optional[int]:
    return properties["count"] if modality in ("image", "points") else None


def shapes_in(modality: str, properties: dict) -> set[str]:
    if modality in ("image", "video", "points"):
        return {o["shape"] for o in properties["objects"]}
    return set()


def colours_in(modality: str, properties: dict) -> set[str]:
    if modality in ("image", "points"):
        return {o["colour"] for o in properties["objects"]}
    return set()


def setting(modality: str, properties: dict) -> Optional[str]:
    """"outdoors" / "indoors" when everything with a usual place agrees on it, else None."""
    if modality == "audio":
        return SOUND_SETTINGS.get(properties["kind"])
    places = {SHAPES[s].setting for s in shapes_in(modality, properties)} - {None}
    return places.pop() if len(places) == 1 else None


def pace(modality: str, properties: dict) -> Optional[str]:
    """"fast" / "slow": a sound's tempo (two events or more), a video's speed."""
    if modality == "audio":
        return properties["tempo"]
    return properties["speed"] if modality == "video" else None


# ------------------------------------------------------------------------------------------------- question types

Input = tuple[str, dict]
"""(modality, properties) of one input."""
Asked = Optional[tuple[str, int]]
"""(question, index of the right input), or None when this pair cannot be asked this unambiguously."""


def _which(values: tuple, wanted) -> Optional[int]:
    """Index of the one input whose value is `wanted` while the other's is a different known value."""
    if None in values or values[0] == values[1]:
        return None
    return values.index(wanted) if wanted in values else None


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _more_objects(a: Input, b: Input, rng: np.random.Generator) -> Asked:
    counts = (object_count(*a), object_count(*b))
    if None in counts or counts[0] == counts[1]:
        return None
    return "Which one has more objects?", int(counts[1] > counts[0])


def _fewer_objects(a: Input, b: Input, rng: np.random.Generator) -> Asked:
    counts = (object_count(*a), object_count(*b))
    if None in counts or counts[0] == counts[1]:
        return None
    return "Which one has fewer objects?", int(counts[1] < counts[0])


def _place(wanted: str) -> Callable[[Input, Input, np.random.Generator], Asked]:
    def ask(a: Input, b: Input, rng: np.random.Generator) -> Asked:
        index = _which((setting(*a), setting(*b)), wanted)
        return None if index is None else (f"Which one is more likely found {wanted}?", index)
    return ask


def _has_colour(a: Input, b: Input, rng: np.random.Generator) -> Asked:
    first, second = colours_in(*a), colours_in(*b)
    only = sorted(first ^ second, key=list(COLOURS).index)
    if not only:
        return None
    colour = only[int(rng.integers(len(only)))]
    return f"Which one has {_article(colour)} {colour} object?", int(colour in second)


def _shows(a: Input, b: Input, rng: np.random.Generator) -> Asked:
    """Asked only about objects called the same in 2D and 3D (composites, cylinder), so the name fits both."""
    first, second = shapes_in(*a), shapes_in(*b)
    only = sorted(s for s in first ^ second if SHAPES[s].name_2d == SHAPES[s].name_3d)
    if not only:
        return None
    shape = only[int(rng.integers(len(only)))]
    return f"Which one shows {_article(shape)} {shape}?", int(shape in second)


def _pace(wanted: str) -> Callable[[Input, Input, np.random.Generator], Asked]:
    def ask(a: Input, b: Input, rng: np.random.Generator) -> Asked:
        index = _which((pace(*a), pace(*b)), wanted)
        return None if index is None else (f"Which one is {'faster' if wanted == 'fast' else 'slower'}?", index)
    return ask


QUESTION_TYPES: dict[tuple[str, str], dict[str, Callable[[Input, Input, np.random.Generator], Asked]]] = {
    ("points", "image"): {"more_objects": _more_objects, "fewer_objects": _fewer_objects,
                          "outdoors": _place("outdoors"), "indoors": _place("indoors"), "colour": _has_colour,
                          "object": _shows},
    ("audio", "video"): {"faster": _pace("fast"), "slower": _pace("slow"), "outdoors": _place("outdoors"),
                         "indoors": _place("indoors")},
}
"""Never asked: loudness and pitch (tiny-world videos are silent, so the sound would always win) and absolute size
(loaders rescale every point cloud into the unit sphere, so a lone object's size is not in the 3D input)."""


# ------------------------------------------------------------------------------------------------------ the pairs

@dataclass
class DisCRnPair:
    """One DisCRn example in the reference's fields, plus where the media are."""

    sample_ids: list[str]
    question: str
    label: int
    """0: the first input answers the question, 1: the second."""
    captions: list[str]
    properties: list
    modalities: list[str]
    paths: list[Optional[str]]
    question_type: Optional[str] = None
    extra: dict = field(default_factory=dict)
    """Reference fields kept as they were (start_seconds, captions_pred_*, ...)."""

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data


def make_pairs(first_pool: list[SampleRecord], second_pool: list[SampleRecord], count: int,
               rng: np.random.Generator, max_tries: int = 200_000) -> list[DisCRnPair]:
    """`count` distinct pairs, question types in turn, labels alternating within each type (starting from 0 and 1
    in turn across types, so the labels of all pairs balance too)."""
    kind = (first_pool[0].modality, second_pool[0].modality)
    if kind not in QUESTION_TYPES:
        raise ValueError(f"no DisCRn questions for {kind}; expected one of {list(QUESTION_TYPES)}")
    types = list(QUESTION_TYPES[kind].items())
    asked_per_type = dict.fromkeys(QUESTION_TYPES[kind], 0)
    seen, pairs = set(), []
    for index in range(count):
        name, ask = types[index % len(types)]
        wanted_label = (asked_per_type[name] + index % len(types)) % 2
        for _ in range(max_tries):
            a = first_pool[int(rng.integers(len(first_pool)))]
            b = second_pool[int(rng.integers(len(second_pool)))]
            asked = ask((a.modality, a.properties), (b.modality, b.properties), rng)
            if asked is None or asked[1] != wanted_label or (a.sample_id, b.sample_id, asked[0]) in seen:
                continue
            seen.add((a.sample_id, b.sample_id, asked[0]))
            pairs.append(DisCRnPair(sample_ids=[a.sample_id, b.sample_id], question=asked[0], label=asked[1],
                                    captions=[a.caption, b.caption], properties=[a.properties, b.properties],
                                    modalities=list(kind), paths=[a.path, b.path], question_type=name))
            asked_per_type[name] += 1
            break
        else:
            raise ValueError(f"found no new {kind} pair for '{name}' (label {wanted_label}) in {max_tries} draws; "
                             "the split is too small for this many pairs: generate more samples or ask fewer")
    return pairs


def generate_discrn(world: str, out: str, split: str = "test", pairs_per_kind: int = 1000,
                    seed: int = 0) -> dict[str, int]:
    """Write `{first}_{second}.json` per pair kind (a json list of pairs); returns the number written per file.
    Every kind is drawn before any file is written, so a kind the split is too small for leaves the folder as it was
    (not one new file beside an older one), and each file is swapped in whole."""
    from core.atomic import atomic_output

    drawn = {}
    for kind in PAIR_KINDS:
        rng = np.random.default_rng([seed, PAIR_KINDS.index(kind)])
        pairs = make_pairs(load_split(world, split, kind[0]), load_split(world, split, kind[1]), pairs_per_kind, rng)
        drawn[f"{kind[0]}_{kind[1]}.json"] = pairs
    for name, pairs in drawn.items():
        with atomic_output(os.path.join(out, name)) as partial:
            partial.write_text(json.dumps([p.to_json() for p in pairs], indent=1), encoding="utf-8")
    return {name: len(pairs) for name, pairs in drawn.items()}


# -------------------------------------------------------------------------------------- the reference json files

REFERENCE_MODALITIES = {"objaverse": ("image", "points"), "audiocaps": ("video", "audio")}
"""Positional modalities of the released files (LAVIS configs discriminatory_reasoning/defaults_mm_*.yaml)."""
MODALITY_ALIASES = {"pc": "points", "images": "image", "3d": "points"}
REFERENCE_LAYOUTS = {"image": "{id}_2.jpeg", "points": "{id}/{id}_8192.npz", "audio": "{id}_{start}.flac",
                     "video": "{id}_{start}.mp4"}
"""File names under each media root, as the reference dataset class builds them (view 2, 8192 points)."""
CORE_FIELDS = ("sample_ids", "question", "label", "captions", "properties", "modalities", "paths", "question_type")


def _swap_entities(pair: DisCRnPair) -> None:
    """The two inputs trade places whole (id, modality, file, caption, ...), so every slot keeps a matching file."""
    pair.label = 1 - pair.label
    for name in ("sample_ids", "captions", "properties", "paths", "modalities"):
        setattr(pair, name, getattr(pair, name)[::-1])
    for key, value in pair.extra.items():
        if isinstance(value, list) and len(value) == 2:
            pair.extra[key] = value[::-1]


LABEL_NAMES = {"first": 0, "second": 1}
"""The reference loader's class names for labels 0 and 1 (its released files store the integers)."""


def read_discrn(path: str, modalities: Optional[tuple[str, str]] = None, media_roots: Optional[dict] = None,
                balance_labels: bool = False) -> list[DisCRnPair]:
    """Pairs from a DisCRn json list: the reference's released files or ours.

    Modalities come from the argument, else each entry's own `modalities`, else the file name (objaverse.json,
    audiocaps.json). With `media_roots` ({modality: folder}), entries without `paths` get the reference's file
    layout. `balance_labels` repeats the reference loader's balancing: entries whose label does not alternate
    with their index swap their two inputs (each input keeps its own modality and file). An entry that is not a
    valid DisCRn entry is a ValueError naming its index.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            entries = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a DisCRn json file ({error})") from error
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a DisCRn file is a json list of entries, found {type(entries).__name__}")
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    default = modalities or next((m for name, m in REFERENCE_MODALITIES.items() if name in stem), None)
    pairs = []
    for index, entry in enumerate(entries):
        pair = _read_entry(entry, modalities, default, media_roots, f"{path}: entry {index}")
        if balance_labels and pair.label != (0 if index % 2 else 1):
            _swap_entities(pair)
        pairs.append(pair)
    return pairs


def _read_entry(entry, modalities: Optional[tuple[str, str]], default: Optional[tuple[str, str]],
                media_roots: Optional[dict], where: str) -> DisCRnPair:
    """One entry checked field by field; `where` ("FILE: entry N") starts every error message."""
    from core.schema import MODALITIES

    if not isinstance(entry, dict):
        raise ValueError(f"{where} is a {type(entry).__name__}, not an object with DisCRn fields")
    missing = [k for k in ("sample_ids", "question", "label") if entry.get(k) is None]
    if missing:
        raise ValueError(f"{where} lacks {missing}; not a DisCRn entry")
    kinds = modalities or entry.get("modalities") or default
    if kinds is None:
        raise ValueError(f"{where}: cannot tell the modalities of the two inputs; pass modalities=(first, second)")
    kinds = [MODALITY_ALIASES.get(m, m) if isinstance(m, str) else m
             for m in (kinds if isinstance(kinds, (list, tuple)) else [kinds])]
    unknown = [m for m in kinds if m not in MODALITIES]
    if len(kinds) != 2 or unknown:
        raise ValueError(f"{where}: modalities {kinds} are not two of {MODALITIES} (or the aliases "
                         f"{sorted(MODALITY_ALIASES)})")
    if not _two(entry["sample_ids"], (str, int)):
        raise ValueError(f"{where}: sample_ids must be a list of exactly two ids, found {entry['sample_ids']!r}")
    label = _label(entry["label"], where)
    if not _two(entry.get("captions"), (str,)):
        raise ValueError(f"{where}: captions must be a list of exactly two strings, found {entry.get('captions')!r}")
    if not isinstance(entry["question"], str):
        raise ValueError(f"{where}: question must be a string, found {entry['question']!r}")
    paths = entry.get("paths") or [_reference_path(kinds[i], entry, i, media_roots) for i in range(2)]
    if not _two(paths, (str, type(None))):
        raise ValueError(f"{where}: paths must be a list of two file names, found {paths!r}")
    properties = entry.get("properties", [None, None])
    if not isinstance(properties, list) or len(properties) != 2:
        raise ValueError(f"{where}: properties must be a list of two records, found {properties!r}")
    return DisCRnPair(sample_ids=[str(s) for s in entry["sample_ids"]], question=entry["question"],
                      label=label, captions=list(entry["captions"]),
                      properties=list(properties), modalities=kinds, paths=list(paths),
                      question_type=entry.get("question_type"),
                      extra={k: v for k, v in entry.items() if k not in CORE_FIELDS})


def _two(value, types: tuple) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, types) and not isinstance(v, bool) for v in value)


def _label(value, where: str) -> int:
    if isinstance(value, str) and value.strip().lower() in LABEL_NAMES:
        return LABEL_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    raise ValueError(f"{where}: label must be 0 or 1 (or \"first\" / \"second\"), found {value!r}")


def _reference_path(modality: str, entry: dict, index: int, media_roots: Optional[dict]) -> Optional[str]:
    if not media_roots or modality not in media_roots:
        return None
    start = entry.get("start_seconds", [0, 0])[index]
    name = REFERENCE_LAYOUTS[modality].format(id=entry["sample_ids"][index], start=int(float(start)))
    return os.path.join(media_roots[modality], name)


# --------------------------------------------------------------------------------------------------- the metric

FIRST_WORDS = frozenset({"first", "firstly", "1st", "1", "left", "former", "option_a"})
SECOND_WORDS = frozenset({"second", "secondly", "2nd", "2", "right", "latter", "option_b"})
MODALITY_WORDS = {"image": frozenset({"image", "picture", "photo", "drawing"}),
                  "points": frozenset({"3d", "pc", "point", "points", "cloud", "mesh", "model", "rendering"}),
                  "audio": frozenset({"audio", "sound", "recording"}),
                  "video": frozenset({"video", "movie", "animation"})}
ARTICLES = frozenset({"a", "an", "the"})
_OPTION_IN_BRACKETS = re.compile(r"\(\s*([ab12])\s*\)|(?<![\w(])([ab])\)")
_NAMED_OPTION = re.compile(
    r"\b(?:option|choice|input|entity|object|scene|item|candidate|answer)\s*[:#]?\s*([ab12])\b")
_LETTER_A_ALONE = re.compile(r"\ba\b(?!\s*\w)")
"""An "a" that no word follows ("A", "is a.", "a, the cube") is an option, not an article."""
_OPTION_TOKENS = {"a": "option_a", "1": "option_a", "b": "option_b", "2": "option_b"}


def answer_tokens(answer: str) -> list[str]:
    """Lower-cased word tokens without punctuation or articles. Options ("(a)", "b)", "Scene A", "answer: B",
    a lone "A", any "b") become option_a / option_b first, so the article "a" is never taken for an option."""
    text = answer.lower()
    text = _OPTION_IN_BRACKETS.sub(lambda m: f" {_OPTION_TOKENS[m.group(1) or m.group(2)]} ", text)
    text = _NAMED_OPTION.sub(lambda m: f" {_OPTION_TOKENS[m.group(1)]} ", text)
    text = _LETTER_A_ALONE.sub(" option_a ", text)
    tokens = re.sub(r"[^\w\s]", " ", text).split()
    return ["option_b" if t == "b" else t for t in tokens if t not in ARTICLES]


def answer_choice(answer: str, modalities: tuple[str, str] | list[str]) -> Optional[int]:
    """0 or 1 when the answer names exactly one of the inputs, None when it names neither or both."""
    words = [set(FIRST_WORDS), set(SECOND_WORDS)]
    if modalities[0] != modalities[1]:
        for i in (0, 1):
            words[i] |= MODALITY_WORDS.get(modalities[i], frozenset())
    tokens = set(answer_tokens(answer))
    named = [bool(tokens & words[0]), bool(tokens & words[1])]
    return named.index(True) if named.count(True) == 1 else None


def is_correct(answer: str, label: int, modalities: tuple[str, str] | list[str]) -> bool:
    return answer_choice(answer, modalities) == label


def score(pairs: list[DisCRnPair], answers: list[str]) -> dict:
    """Accuracy over pairs, the share of answers naming neither or both inputs, and chance for comparison."""
    if len(pairs) != len(answers):
        raise ValueError(f"{len(pairs)} pairs but {len(answers)} answers")
    choices = [answer_choice(a, p.modalities) for p, a in zip(pairs, answers)]
    correct = sum(c == p.label for c, p in zip(choices, pairs))
    return {"accuracy": correct / max(len(pairs), 1), "undecided": choices.count(None) / max(len(pairs), 1),
            "chance": 0.5, "pairs": len(pairs)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.discrn", description="Make tiny-world DisCRn pairs.")
    parser.add_argument("--world", default="data/world", help="folder made by python -m train.world")
    parser.add_argument("--out", default="data/discrn", help="output folder (default: data/discrn)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="world split to draw inputs from (default: test)")
    parser.add_argument("--pairs", type=positive_int, default=1000, help="pairs per pair kind (default: 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        written = generate_discrn(args.world, args.out, args.split, args.pairs, args.seed)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    for name, count in written.items():
        print(f"{os.path.join(args.out, name)}: {count} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
