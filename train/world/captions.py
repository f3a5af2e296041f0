"""Short English captions written from properties records, one fixed phrasing per fact.

One canonical caption per sample keeps captioning learnable at tiny scale and its scores comparable; variety comes
from the instruction templates and the LLM-generated questions, not from the captions.
"""
from __future__ import annotations

from train.world.vocabulary import COUNT_WORDS, POSITION_PHRASES, SOUND_NOUNS, plural

ADVERBS = {"slow": "slowly", "fast": "quickly"}
TEMPO_PHRASES = {"slow": "slowly spaced", "fast": "in quick succession"}
TIMES = {2: "twice", 3: "three times", 4: "four times"}


def noun_phrase(count: int, words: list[str], noun: str) -> str:
    """'a small red square' / 'two small red squares'."""
    head = "a" if count == 1 else COUNT_WORDS[count]
    return " ".join([head, *words, noun if count == 1 else plural(noun)])


def image_caption(properties: dict) -> str:
    """'two small red squares on the left and a large blue circle at the top'."""
    parts = [f"{noun_phrase(g['count'], [g['size'], g['colour']], g['name'])} {POSITION_PHRASES[g['position']]}"
             for g in properties["groups"]]
    return " and ".join(parts)


def video_caption(properties: dict) -> str:
    """'a small red square moves left quickly while a large blue circle stays still'."""
    mover = next(o for o in properties["objects"] if o["role"] == "moving")
    adverb = ADVERBS[properties["speed"]]
    motion = properties["motion"]
    if motion == "change colour":
        subject = noun_phrase(1, [mover["size"]], mover["name"])
        action = f"changes from {mover['colour']} to {mover['colour_end']} {adverb}"
    else:
        subject = noun_phrase(1, [w for w in (mover["size"], mover["colour"]) if w], mover["name"])
        action = f"{motion}s {adverb}" if motion in ("grow", "shrink") else f"moves {motion} {adverb}"
    caption = f"{subject} {action}"
    for still in (o for o in properties["objects"] if o["role"] == "still"):
        caption += f" while {noun_phrase(1, [still['size'], still['colour']], still['name'])} stays still"
    return caption


def audio_caption(properties: dict) -> str:
    """'three high beeps in quick succession' / 'a low voice says "hello" twice, slowly spaced'."""
    count, pitch, kind = properties["events"], properties["pitch"], properties["kind"]
    tempo = f" {TEMPO_PHRASES[properties['tempo']]}" if properties["tempo"] else ""
    if kind == "speech":
        times = f" {TIMES[count]}," if count > 1 else ""
        return f'a {pitch} voice says "{properties["word"]}"{times}{tempo}'
    singular, many = SOUND_NOUNS[kind]
    words = [properties["sweep"], pitch] if properties["sweep"] else [pitch]
    head = "a single" if count == 1 else COUNT_WORDS[count]
    return f"{head} {' '.join(words)} {singular if count == 1 else many}{tempo}"


def points_caption(properties: dict) -> str:
    """'a large red cube on the left, a small blue sphere in the center and a green tree on the right'."""
    objects = sorted(properties["objects"], key=lambda o: o["base"][0])
    parts = [noun_phrase(1, [o["size"], o["colour"]], o["name"]) for o in objects]
    if len(parts) > 1:
        parts = [f"{p} {POSITION_PHRASES[o['position']]}" for p, o in zip(parts, objects)]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


CAPTIONERS = {"image": image_caption, "video": video_caption, "audio": audio_caption, "points": points_caption}


def caption(modality: str, properties: dict) -> str:
    if modality not in CAPTIONERS:
        raise ValueError(f"no captions for modality {modality!r}; expected one of {list(CAPTIONERS)}")
    return CAPTIONERS[modality](properties)
