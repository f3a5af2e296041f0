"""Clotho csv (file_name, caption_1 ... caption_5); the audio files sit in one folder under their own names."""
from __future__ import annotations

import os
import re

from train.adapters.base import Adapted, find_media, read_csv, required

CAPTION_COLUMN = re.compile(r"caption_(\d+)")
"""caption_1 ... caption_5; other caption_* columns (some releases add caption_keywords) are not captions."""


def read_clotho(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    columns, rows = read_csv(annotations)
    caption_columns = sorted((c for c in columns if CAPTION_COLUMN.fullmatch(c)),
                             key=lambda c: int(c[len("caption_"):]))
    if "file_name" not in columns or not caption_columns:
        raise ValueError(f"{annotations}: not a Clotho csv (needs file_name and caption_1..caption_5 columns)")
    adapted = Adapted(looked_for=f"rows with a file_name and a caption in {caption_columns}")
    for where, row in rows:
        name = required(row, "file_name", where)
        adapted.add("clotho", "audio", split, os.path.splitext(name)[0], find_media(media_dir, [name]),
                    [row[c] for c in caption_columns], {"file_name": name})
    return adapted
