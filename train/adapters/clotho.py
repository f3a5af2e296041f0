"""Clotho csv (file_name, caption_1 ... caption_5); the audio files sit in one folder under their own names."""
from __future__ import annotations

import csv
import os
import re

from train.adapters.base import Adapted, find_media, open_text

CAPTION_COLUMN = re.compile(r"caption_(\d+)")
"""caption_1 ... caption_5; other caption_* columns (some releases add caption_keywords) are not captions."""


def read_clotho(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    with open_text(annotations) as handle:
        rows = list(csv.DictReader(handle))
    caption_columns = sorted((c for c in (rows[0] if rows else {}) if CAPTION_COLUMN.fullmatch(c)),
                             key=lambda c: int(c[len("caption_"):]))
    if not rows or "file_name" not in rows[0] or not caption_columns:
        raise ValueError(f"{annotations}: not a Clotho csv (needs file_name and caption_1..caption_5 columns)")
    adapted = Adapted()
    for row in rows:
        name = row["file_name"]
        adapted.add("clotho", "audio", split, os.path.splitext(name)[0], find_media(media_dir, [name]),
                    [row[c] for c in caption_columns], {"file_name": name})
    return adapted
