"""What makes a rewrite of a question acceptable: it asks the same kind of thing about the same things.

The small offline LLM rewrites fluently but not faithfully ("colour cone" -> "How does the cone look?"), and IAS, a
fluency score under the media, prefers such fluent wrong questions, so every rewrite passes these checks first.
Words of four letters or more match misspelled too: the user's question is often the misspelled one.
"""
from __future__ import annotations

import re
from typing import Optional

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, Indel

_STOPWORDS = frozenset(
    "the a an is are was were be of in on at to for and or it its this that these those there here what which who "
    "whom how why when where do does did can could would should will you me my please tell is any some with from "
    "about as by into than then so if not no yes".split())


_GENERIC_WORDS = frozenset(
    "describe show shown see look looks like kind type sort number many much count big large small size colour color "
    "colours colors shape shapes position located location side part "
    "object objects thing things item items picture image photo sound audio clip video scene point cloud move moves "
    "moving direction fast slow happen happens heard hear visible contain contains".split())


QUESTION_KINDS = {
    "colour": "colour color colours colors coloured colored",
    "count": "many number count",
    "size": "big large small size tall little huge tiny",
    "position": "where side position located location left right top bottom center centre middle",
    "shape": "shape shapes form",
    "appearance": "look looks",
    "pitch": "pitch pitched high low",
    "motion": "move moves moving direction",
    "speed": "fast slow slowly quickly speed",
    "person": "who whom whose",
}
"""Words that say what a question asks. A rewrite may fix the wording but not the kind: the small LLM turns
"colour cone" into "How does the cone look?" and "side sphere" into "How big is the sphere?", and IAS, a fluency
score, prefers those fluent wrong questions to the vague right ones. "who" asks for a person, which no tiny-world
scene holds: "wat objct is on teh left?" became "Who is the one on the left?"."""
_KIND_OF_WORD = {word: kind for kind, words in QUESTION_KINDS.items() for word in words.split()}
QUESTION_PHRASES = {"how much": "count"}
"""Kinds said by a phrase, not a word: "How much is the shape?" asks a count, "not too much trouble" asks nothing."""


def misspells(word: str, known: str) -> bool:
    """True when `word` (four letters or more, not itself a common word) is `known` with one letter dropped, added or
    two neighbours swapped ('collor', 'wehre'), the first letter kept; not one letter replaced: 'side' must not read
    as 'size', nor 'from' as 'form', 'here' as 'where' or 'bright' as 'right'."""
    if len(word) < 4 or len(known) < 4 or word in _STOPWORDS or word[0] != known[0]:
        return False
    return Indel.distance(word, known) <= 1 or (sorted(word) == sorted(known)
                                                and DamerauLevenshtein.distance(word, known) <= 1)


def question_kinds(text: str) -> set[str]:
    """The kinds of QUESTION_KINDS and QUESTION_PHRASES a text asks about, its words read misspelled too."""
    text = normalised(text)
    kinds = {kind for phrase, kind in QUESTION_PHRASES.items() if re.search(rf"\b{phrase}\b", text)}
    for word in text.split():
        if word in _KIND_OF_WORD:
            kinds.add(_KIND_OF_WORD[word])
        else:
            kinds |= {kind for known, kind in _KIND_OF_WORD.items() if misspells(word, known)}
    return kinds


ALTERNATIVES = (
    (("high", "higher"), ("low", "lower")),
    (("fast", "faster", "quick", "quickly"), ("slow", "slower", "slowly")),
    (("small", "smaller", "little"), ("large", "larger", "big", "bigger")),
    (("rise", "rises", "rising"), ("fall", "falls", "falling")),
    (("left",), ("right",)),
    (("top", "above", "upper"), ("bottom", "below", "lower")),
    (("up",), ("down",)),
)
"""Opposites a question can offer as its answers ("Is the sound high or low pitched?"). A rewrite that keeps only one
side asks something else: "rhythm fast slow" became "How fast is the rhythm?", answered "four"."""


def _names(word: str, forms: tuple[str, ...]) -> bool:
    return any(word == form or misspells(word, form) for form in forms)


def offers(words: list[str], sides: tuple[tuple[str, ...], tuple[str, ...]]) -> bool:
    """True when the two sides stand as a choice: next to each other ("fast slow") or joined by "or" ("left or the
    right"); two objects that merely differ ("the small ball left of the big ball") offer none."""
    first = [i for i, word in enumerate(words) if _names(word, sides[0])]
    second = [i for i, word in enumerate(words) if _names(word, sides[1])]
    for i in first:
        for j in second:
            between = words[min(i, j) + 1:max(i, j)]
            if not between or (between[0] == "or" and len(between) <= 2):
                return True
    return False


def dropped_alternative(rewrite: str, original: str) -> Optional[str]:
    """The first answer the original offers (both sides of an ALTERNATIVES pair) that the rewrite leaves out."""
    theirs, mine = normalised(original).split(), normalised(rewrite).split()
    for sides in ALTERNATIVES:
        if offers(theirs, sides):
            missing = [side for side in sides if not any(_names(word, side) for word in mine)]
            if missing:
                return missing[0][0]
    return None


def repeats_itself(rewrite: str) -> bool:
    """Two identical sentences: the small LLM's degenerate loop ("You are shown to me. You are shown to me.")."""
    sentences = [normalised(part) for part in re.split(r"[.?!]+", rewrite)]
    sentences = [sentence for sentence in sentences if sentence]
    return len(set(sentences)) < len(sentences)


def meaning_change(rewrite: str, original: str) -> Optional[str]:
    """Why a well-formed rewrite asks something other than the original, or None when it asks the same."""
    if repeats_itself(rewrite):
        return "repeats itself"
    if not shares_topic(rewrite, original):
        return "off-topic"
    if question_kinds(rewrite) != question_kinds(original):
        return "changes what is asked"
    if negated(rewrite) != negated(original):
        return "adds a negation" if negated(rewrite) else "drops the negation"
    added = new_words(rewrite, original)
    if added:
        return f"off-topic: adds {added[0]!r}"
    dropped = dropped_alternative(rewrite, original)
    if dropped:
        return f"drops the alternative {dropped!r}"
    return None


_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|nowhere|neither|nor|cannot)\b|n['’]t\b")


def negated(text: str) -> bool:
    """Whether the text says not / no / never / ...n't: the stop-word lists ignore those words, but a rewrite
    that adds one ("You are not here to tell me about the picture.") asks the opposite."""
    return bool(_NEGATION.search(text.lower()))


def normalised(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def content_words(text: str) -> list[str]:
    return [w for w in normalised(text).split() if len(w) >= 3 and w not in _STOPWORDS]


def spelled_alike(word: str, other: str) -> bool:
    """Loose: a user's misspelling of a word the rewrite spells right ('colr' ~ 'colour'). Topic checks use it;
    question kinds use the strict `misspells`, because there a near word is another kind ('side' / 'size')."""
    return fuzz.ratio(word, other) >= 75


def new_words(rewrite: str, original: str) -> list[str]:
    """Content words of the rewrite that the original never used (allowing misspellings) and that are not generic
    question words: a rewrite that brings in 'car' for a question about cylinders, or 'left' for one about the
    right, asks something else."""
    theirs = normalised(original).split()
    return [w for w in content_words(rewrite) if w not in _GENERIC_WORDS
            and not any(spelled_alike(w, word) for word in theirs)]


def shares_topic(rewrite: str, original: str) -> bool:
    """True when a content word of the rewrite matches one of the original's, allowing misspellings
    ('colour' ~ 'colr'); an original without content words cannot be judged, so anything passes."""
    theirs = content_words(original)
    if not theirs:
        return True
    return any(spelled_alike(mine, word) for mine in content_words(rewrite) for word in theirs)


def clean_rewrite(generated: str) -> Optional[str]:
    """The first line of a completion, without quotes or a repeated label; None if it never ended (over-long)."""
    if "\n" not in generated:
        return None
    line = generated.split("\n", 1)[0].strip().strip("\"'").strip()
    return re.sub(r"^(rewrite|question)\s*:\s*", "", line, flags=re.IGNORECASE).strip()
