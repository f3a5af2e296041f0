"""Real-data adapters: reference caption formats -> the same SampleRecords (and manifests) as the tiny world, so
the training scripts run unchanged on real captions. `python -m train.adapters NAME ...` writes a manifest."""
from __future__ import annotations

from train.adapters.audiocaps import read_audiocaps
from train.adapters.cap3d import read_cap3d
from train.adapters.clotho import read_clotho
from train.adapters.coco import read_coco
from train.adapters.msrvtt import read_msrvtt
from train.adapters.webvid import read_webvid

ADAPTERS = {"coco": read_coco, "audiocaps": read_audiocaps, "clotho": read_clotho, "msrvtt": read_msrvtt,
            "webvid": read_webvid, "cap3d": read_cap3d}
"""name -> reader(annotations, media_dir, split) -> Adapted."""
