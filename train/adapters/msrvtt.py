"""MSR-VTT json ({"videos": [{"video_id", "split"}], "sentences": [{"video_id", "caption"}]}) or the LAVIS list
([{"video": "video0.mp4", "caption": str or [str]}]).

The official file's splits are "train", "validate" and "test"; `only_split` keeps one of them (the LAVIS lists are
already one split each and carry no split names, so it is refused there rather than ignored).
"""
from __future__ import annotations

import os
from typing import Optional

from train.adapters.base import Adapted, caption_list, find_media, grouped, read_json, required, with_extensions

VIDEO_EXTENSIONS = ("mp4", "avi", "webm", "mkv")
OFFICIAL_SPLITS = ("train", "validate", "test")


def read_msrvtt(annotations: str, media_dir: str, split: str = "train", only_split: Optional[str] = None) -> Adapted:
    if only_split is not None and only_split not in OFFICIAL_SPLITS:
        raise ValueError(f"only_split must be one of {OFFICIAL_SPLITS}, not {only_split!r}")
    data = read_json(annotations)
    if isinstance(data, dict) and "videos" in data and "sentences" in data:
        of_split = f" of split {only_split!r}" if only_split else ""
        adapted = Adapted(looked_for=f"entries of 'videos'{of_split} with a caption in 'sentences' (same video_id)")
        captions = grouped((required(s, "video_id", f"{annotations} sentences[{i}]"),
                            required(s, "caption", f"{annotations} sentences[{i}]"))
                           for i, s in enumerate(data["sentences"]))
        for index, video in enumerate(data["videos"]):
            video_id = required(video, "video_id", f"{annotations} videos[{index}]")
            if only_split and video.get("split") != only_split:
                continue
            path = find_media(media_dir, with_extensions([video_id], VIDEO_EXTENSIONS))
            adapted.add("msrvtt", "video", split, video_id, path, captions.get(video_id, []),
                        {"video_id": video_id, "msrvtt_split": video.get("split")})
    elif isinstance(data, list) and any(isinstance(entry, dict) and "video" in entry for entry in data):
        if only_split:
            raise ValueError(f"{annotations}: a LAVIS list has no split names, so only_split={only_split!r} cannot "
                             "apply; it is one split already")
        adapted = Adapted(looked_for="list entries with a video and a caption")
        captions = grouped((required(entry, "video", f"{annotations} entry {i}"), c) for i, entry in enumerate(data)
                           for c in caption_list(entry, f"{annotations} entry {i}"))
        for video, texts in captions.items():
            key = os.path.splitext(os.path.basename(video))[0]
            adapted.add("msrvtt", "video", split, key, find_media(media_dir, [video, os.path.basename(video)]), texts,
                        {"video_id": key})
    else:
        raise ValueError(f"{annotations}: not an MSR-VTT caption file (expected {{'videos', 'sentences'}} or a list "
                         "of {'video', 'caption'} entries)")
    return adapted
