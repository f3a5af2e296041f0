"""AudioCaps csv (audiocap_id, youtube_id, start_time, caption); one record per clip with all its captions.

Downloaded clips are usually named after the YouTube id and start second; the common spellings are all tried.
"""
from __future__ import annotations

from train.adapters.base import Adapted, find_media, grouped, read_csv, required, with_extensions

AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "m4a")
COLUMNS = {"youtube_id", "start_time", "caption"}


def read_audiocaps(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    columns, rows = read_csv(annotations)
    if not COLUMNS <= set(columns):
        raise ValueError(f"{annotations}: not an AudioCaps csv (needs columns {sorted(COLUMNS)})")
    clips = grouped(((required(row, "youtube_id", where), _start(row, where)), required(row, "caption", where))
                    for where, row in rows)
    adapted = Adapted(looked_for="rows with youtube_id, start_time and caption")
    for (youtube_id, start), captions in clips.items():
        seconds = int(float(start))
        stems = [f"{youtube_id}_{start}", f"{youtube_id}_{seconds}", f"{youtube_id}_{seconds}000", f"Y{youtube_id}",
                 youtube_id]
        path = find_media(media_dir, with_extensions(stems, AUDIO_EXTENSIONS))
        adapted.add("audiocaps", "audio", split, f"{youtube_id}_{seconds}", path, captions,
                    {"youtube_id": youtube_id, "start_time": seconds})
    return adapted


def _start(row: dict, where: str) -> str:
    start = required(row, "start_time", where)
    try:
        float(start)
    except ValueError:
        raise ValueError(f"{where}: start_time {start!r} is not a number of seconds") from None
    return start
