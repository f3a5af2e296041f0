"""What every real-data adapter shares: finding a sample's media file and building its SampleRecord.

Real data sets are downloaded piecemeal (YouTube clips vanish, people fetch a subset), so a caption whose media file
is absent is not an error: the adapter skips it and lists it in `missing`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

from train.world.records import SampleRecord


@dataclass
class Adapted:
    records: list[SampleRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Keys of the annotations whose media file was not found."""
    notes: list[str] = field(default_factory=list)
    """What the user should know about the data found (e.g. files present but in a format the loaders refuse)."""

    def add(self, source: str, modality: str, split: str, key: str, path: Optional[str], captions: list[str],
            properties: dict) -> None:
        captions = [c.strip() for c in captions if c and c.strip()]
        if path is None:
            self.missing.append(key)
        elif captions:
            self.records.append(SampleRecord(sample_id=f"{source}-{key}", modality=modality, path=path,
                                             caption=captions[0], captions=captions, properties=properties,
                                             split=split, source=source))


def open_text(path: str):
    """An annotation file for reading; utf-8-sig also reads the byte-order mark Windows tools write first (plain
    utf-8 would glue it to the first csv column name or make json refuse the file)."""
    return open(path, newline="", encoding="utf-8-sig")


def find_media(media_dir: str, candidates: Iterable[str]) -> Optional[str]:
    """The first candidate file name (relative to media_dir) that exists, as a path; None if none does."""
    for name in candidates:
        path = os.path.join(media_dir, name)
        if os.path.isfile(path):
            return path
    return None


def with_extensions(stems: Iterable[str], extensions: Iterable[str]) -> list[str]:
    return [f"{stem}.{extension}" for stem in stems for extension in extensions]


def grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """key -> its captions, keys and captions in first-seen order."""
    captions: dict[str, list[str]] = {}
    for key, caption in pairs:
        captions.setdefault(key, []).append(caption)
    return captions
