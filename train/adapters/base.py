"""What every real-data adapter shares: reading the caption file, finding a sample's media file and building its
SampleRecord.

Real data sets are downloaded piecemeal (YouTube clips vanish, people fetch a subset), so a caption whose media file
is absent is not an error: the adapter skips it and lists it in `missing`. A malformed entry is an error whose
message starts with where it is ("FILE line N" for csv rows, "FILE annotations[N]" for json entries).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

from train.world.records import SampleRecord


@dataclass
class Adapted:
    looked_for: str
    """What counts as a captioned item in this file, for the message when there is none."""
    records: list[SampleRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Keys of the captioned items whose media file was not found."""

    def add(self, source: str, modality: str, split: str, key: str, path: Optional[str], captions: list[str],
            properties: dict) -> None:
        """A record for a captioned item with a media file; a captioned item without one goes to `missing`, an item
        without captions is no sample at all."""
        captions = [c.strip() for c in captions if c and c.strip()]
        if not captions:
            return
        if path is None:
            self.missing.append(key)
        else:
            self.records.append(SampleRecord(sample_id=f"{source}-{key}", modality=modality, path=path,
                                             caption=captions[0], captions=captions, properties=properties,
                                             split=split, source=source))


def read_text(path: str) -> str:
    """An annotation file's text; utf-8-sig also reads the byte-order mark Windows tools write first (plain utf-8
    would glue it to the first csv column name or make json refuse the file)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from error


def read_json(path: str):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a json file ({error})") from error


def read_csv(path: str) -> tuple[list[str], list[tuple[str, dict]]]:
    """The header's column names and each row with where it is ("FILE line N", the line the row ends on)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    rows = [(f"{path} line {reader.line_num}", row) for row in reader]
    return list(reader.fieldnames or []), rows


def required(entry, key: str, where: str):
    """entry[key]; an absent or blank value is a ValueError that names the entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with {key!r}, found {entry!r}")
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: missing {key!r}")
    return value


def caption_list(entry, where: str) -> list[str]:
    """The 'caption' of a LAVIS-style entry: one string or a list of them."""
    value = required(entry, "caption", where)
    captions = [value] if isinstance(value, str) else value
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where}: 'caption' must be a string or a list of strings, found {value!r}")
    return captions


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
