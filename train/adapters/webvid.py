"""WebVid csv (videoid, contentUrl, duration, page_dir, name): the caption is `name`; downloads are stored either
as {page_dir}/{videoid}.mp4 or flat as {videoid}.mp4."""
from __future__ import annotations

import csv

from train.adapters.base import Adapted, find_media, open_text

COLUMNS = {"videoid", "name"}


def read_webvid(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    with open_text(annotations) as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not COLUMNS <= set(rows[0]):
        raise ValueError(f"{annotations}: not a WebVid csv (needs columns {sorted(COLUMNS)})")
    adapted = Adapted()
    for row in rows:
        video_id = row["videoid"]
        candidates = [f"{row['page_dir']}/{video_id}.mp4"] if row.get("page_dir") else []
        candidates.append(f"{video_id}.mp4")
        adapted.add("webvid", "video", split, video_id, find_media(media_dir, candidates), [row["name"]],
                    {"videoid": video_id, "duration": row.get("duration")})
    return adapted
