"""WebVid csv (videoid, contentUrl, duration, page_dir, name): the caption is `name`; downloads are stored either
as {page_dir}/{videoid}.mp4 or flat as {videoid}.mp4."""
from __future__ import annotations

from train.adapters.base import Adapted, find_media, read_csv, required

COLUMNS = {"videoid", "name"}


def read_webvid(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    columns, rows = read_csv(annotations)
    if not COLUMNS <= set(columns):
        raise ValueError(f"{annotations}: not a WebVid csv (needs columns {sorted(COLUMNS)})")
    adapted = Adapted(looked_for="rows with a videoid and a name (the caption)")
    for where, row in rows:
        video_id = required(row, "videoid", where)
        candidates = [f"{row['page_dir']}/{video_id}.mp4"] if row.get("page_dir") else []
        candidates.append(f"{video_id}.mp4")
        adapted.add("webvid", "video", split, video_id, find_media(media_dir, candidates),
                    [required(row, "name", where)], {"videoid": video_id, "duration": row.get("duration")})
    return adapted
