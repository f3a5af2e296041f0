"""COCO-style image captions: the official `captions_*.json` ({"images", "annotations"}) or the LAVIS/Karpathy list
([{"image": "val2014/x.jpg", "caption": str or [str]}])."""
from __future__ import annotations

import json
import os

from train.adapters.base import Adapted, find_media, grouped, open_text


def read_coco(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    with open_text(annotations) as handle:
        data = json.load(handle)
    adapted = Adapted()
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        files = {image["id"]: image["file_name"] for image in data["images"]}
        captions = grouped((a["image_id"], a["caption"]) for a in data["annotations"])
        for image_id, file_name in files.items():
            path = find_media(media_dir, [file_name, os.path.basename(file_name)])
            adapted.add("coco", "image", split, str(image_id), path, captions.get(image_id, []),
                        {"image_id": image_id, "file_name": file_name})
    elif isinstance(data, list) and all("image" in entry and "caption" in entry for entry in data):
        captions = grouped((entry["image"], c) for entry in data
                           for c in ([entry["caption"]] if isinstance(entry["caption"], str) else entry["caption"]))
        for image, texts in captions.items():
            path = find_media(media_dir, [image, os.path.basename(image)])
            key = os.path.splitext(os.path.basename(image))[0]
            adapted.add("coco", "image", split, key, path, texts, {"file_name": image})
    else:
        raise ValueError(f"{annotations}: not a COCO caption file (expected {{'images', 'annotations'}} or a list of "
                         "{'image', 'caption'} entries)")
    return adapted
