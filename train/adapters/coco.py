"""COCO-style image captions: the official `captions_*.json` ({"images", "annotations"}) or the LAVIS/Karpathy list
([{"image": "val2014/x.jpg", "caption": str or [str]}])."""
from __future__ import annotations

import os

from train.adapters.base import Adapted, caption_list, find_media, grouped, read_json, required


def read_coco(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    data = read_json(annotations)
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        adapted = Adapted(looked_for="entries of 'images' with a caption in 'annotations' (same image_id)")
        files = {}
        for index, image in enumerate(data["images"]):
            where = f"{annotations} images[{index}]"
            files[required(image, "id", where)] = required(image, "file_name", where)
        captions = grouped((required(a, "image_id", f"{annotations} annotations[{i}]"),
                            required(a, "caption", f"{annotations} annotations[{i}]"))
                           for i, a in enumerate(data["annotations"]))
        for image_id, file_name in files.items():
            path = find_media(media_dir, [file_name, os.path.basename(file_name)])
            adapted.add("coco", "image", split, str(image_id), path, captions.get(image_id, []),
                        {"image_id": image_id, "file_name": file_name})
    elif isinstance(data, list) and any(isinstance(entry, dict) and "image" in entry for entry in data):
        adapted = Adapted(looked_for="list entries with an image and a caption")
        captions = grouped((required(entry, "image", f"{annotations} entry {i}"), c) for i, entry in enumerate(data)
                           for c in caption_list(entry, f"{annotations} entry {i}"))
        for image, texts in captions.items():
            path = find_media(media_dir, [image, os.path.basename(image)])
            key = os.path.splitext(os.path.basename(image))[0]
            adapted.add("coco", "image", split, key, path, texts, {"file_name": image})
    else:
        raise ValueError(f"{annotations}: not a COCO caption file (expected {{'images', 'annotations'}} or a list of "
                         "{'image', 'caption'} entries)")
    return adapted
