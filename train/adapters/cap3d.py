"""Cap3D csv (uid, caption; released without a header) with one point-cloud file per uid.

Point clouds are found as {uid}.npy / .npz / .ply / .pt, or in the reference's layout {uid}/{uid}_8192.npz.
"""
from __future__ import annotations

import csv

from train.adapters.base import Adapted, find_media, open_text, with_extensions

POINT_EXTENSIONS = ("npy", "npz", "ply", "pt")


def read_cap3d(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    with open_text(annotations) as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["uid", "caption"]:
        rows = rows[1:]
    if not rows or any(len(row) < 2 for row in rows):
        raise ValueError(f"{annotations}: not a Cap3D csv (expected rows of uid,caption)")
    adapted = Adapted()
    for uid, caption, *_ in rows:
        candidates = with_extensions([uid, f"{uid}_8192", f"{uid}/{uid}_8192"], POINT_EXTENSIONS)
        adapted.add("cap3d", "points", split, uid, find_media(media_dir, candidates), [caption], {"uid": uid})
    return adapted
